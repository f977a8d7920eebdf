import ArgumentParser

Jukebox.main()
