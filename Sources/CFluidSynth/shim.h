#include <fluidsynth.h>

// Debian's FluidSynth also tries libinstpatch (a GLib library) on a SoundFont its own loader
// refuses, and libinstpatch reports through GLib's log, which prints to stderr. GLib's function
// for routing that log is declared here (as glib.h has it, with GLogLevelFlags as int) so this
// module needs no GLib include paths; libglib-2.0 is already loaded with libfluidsynth.
typedef void (*jukebox_glib_log_function)(const char *domain, int level, const char *message, void *data);
jukebox_glib_log_function g_log_set_default_handler(jukebox_glib_log_function function, void *data);
