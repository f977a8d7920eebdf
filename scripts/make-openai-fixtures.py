#!/usr/bin/env python3
"""Writes Tests/JukeboxKitTests/Fixtures/openai: micro copies of OpenAI's released Jukebox models,
built with OpenAI's own code, and their reference outputs, for the parity tests of
`jukebox import openai`.

Each model is made by OpenAI's `make_vqvae` / `make_prior` from the official preset (hparams.py:
`vqvae`, `upsampler_level_0`, `upsampler_level_1`, `prior_5b`) with only widths, context length,
codebook and label vocabularies shrunk, so every file has exactly the official key structure
(669 / 1006 / 1006 / 872 keys; the 5b prior's Conv1D weights in F16 as `fp16_params` makes them).
Depths, attention orders, dilation cycles and multipliers are the official ones. Every tensor is
random (a fixed seed): synthetic weights, no OpenAI weights anywhere. Each model is saved by
Jukebox's own `save_checkpoint` ({'hps', 'model', 'opt', 'step'}) in both torch formats:

  openai/legacy/5b/{vqvae,prior_level_0,prior_level_1,prior_level_2}.pth.tar
                 torch.save(..., _use_new_zipfile_serialization=False), the released files' format
  openai/zip/5b/...          the same objects in torch's default zip format
  openai/<name>.ref.safetensors   reference outputs (F32 unless said):
      vqvae:  input [1, T]; codes.L (I64) [1, T / hop_L]; recon.L [1, T] per level L
              (the level's codes decoded by that level's decoder alone, as sampling does)
      priors: z (I64) [1, n_ctx] the teacher-forced codes; z_cond (I64) [1, n_ctx / 4] (upsamplers);
              y (I64) [1, 9] the label vector [total, offset, length, artist, genres...];
              preds [1, n_ctx, bins] the logits of `z_forward(get_preds=True)`; loss [1] (bits)

Needs PyTorch and numpy, and OpenAI's Jukebox source (github.com/openai/jukebox; not vendored:
its licence is non-commercial). Neither is needed by `make test`.

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy
    git clone https://github.com/openai/jukebox /tmp/openai-jukebox
    /tmp/torchvenv/bin/python scripts/make-openai-fixtures.py --jukebox /tmp/openai-jukebox

Shims (imports only, no model behaviour is changed): the modules Jukebox imports for audio files,
progress bars and lyrics (librosa, av, soundfile, tqdm, unidecode, fire) are stubbed when absent,
as none of them is used by the models; and because Jukebox hard-codes CUDA, on this CPU-only
machine `Tensor.cuda()` returns the tensor itself, `torch.cuda.LongTensor` is `torch.LongTensor`
(for its dtype asserts) and `device='cuda'` in `torch.arange`/`torch.zeros` means the CPU; and the
rank that Jukebox asks torch.distributed for comes from a one-process gloo group.
The files differ from run to run only in storage keys (legacy) and the zip's serialization id.
"""
import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
import types

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "JukeboxKitTests", "Fixtures", "openai")


def install_shims():
    for name in ["librosa", "av", "soundfile", "fire"]:
        if name not in sys.modules:
            try:
                __import__(name)
            except ImportError:
                sys.modules[name] = types.ModuleType(name)
    try:
        import tqdm  # noqa: F401
    except ImportError:
        m = types.ModuleType("tqdm")
        m.tqdm = lambda x=None, *a, **k: x
        sys.modules["tqdm"] = m
    try:
        import unidecode  # noqa: F401
    except ImportError:
        m = types.ModuleType("unidecode")
        m.unidecode = lambda s: s
        sys.modules["unidecode"] = m
    # CUDA is hard-coded in Jukebox; the CPU stands in for it.
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.cuda.LongTensor = torch.LongTensor
    # Jukebox asks torch.distributed for its rank (it sets up MPI itself): one local process.
    if not torch.distributed.is_initialized():
        handle, path = tempfile.mkstemp()
        os.close(handle)
        os.remove(path)
        torch.distributed.init_process_group("gloo", init_method=f"file://{path}", rank=0, world_size=1)
    for fname in ["arange", "zeros", "ones", "empty", "randn", "tensor"]:
        original = getattr(torch, fname)

        def wrapped(*a, _original=original, **k):
            if str(k.get("device", "")).startswith("cuda"):
                k["device"] = "cpu"
            return _original(*a, **k)
        setattr(torch, fname, wrapped)


def write_safetensors(path, tensors):
    """A minimal safetensors writer (header JSON, then raw little-endian data)."""
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        dtype = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}[array.dtype]
        data = array.tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "openai-parity-reference"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def randomize(model, seed):
    """Every tensor random and non-zero, so that a swapped or mis-transposed tensor shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.state_dict(keep_vars=True).items():
            noise = torch.randn(p.shape, generator=g).to(p.dtype)
            if name.endswith((".b", ".bias")) or "ln" in name.split(".")[-2]:
                base = torch.ones_like(p) if name.endswith("ln_0.weight") or name.endswith("ln_1.weight") \
                    or name.endswith("ln.weight") else torch.zeros_like(p)
                p.copy_(base + 0.1 * noise)
            else:
                p.add_(0.02 * noise)


def save_both(make_models, model, hps, name, step):
    """Jukebox's own save_checkpoint, once per format."""
    for fmt in ["legacy", "zip"]:
        folder = os.path.join(OUT, fmt, "5b")
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryDirectory() as logdir:
            logger = types.SimpleNamespace(iters=step, logdir=logdir)
            original = torch.save
            if fmt == "legacy":
                make_models.t.save = lambda obj, f, **k: original(obj, f, _use_new_zipfile_serialization=False)
            try:
                make_models.save_checkpoint(logger, name, model, None, dict(step=step), hps)
            finally:
                make_models.t.save = original
            shutil.move(os.path.join(logdir, f"checkpoint_{name}.pth.tar"), os.path.join(folder, f"{name}.pth.tar"))


MICRO_VQVAE = dict(width=4, emb_width=8, l_bins=32, sample_length=4096)
MICRO_LABELS = dict(y_bins=(6, 10), t_bins=8, min_duration=0.05, max_duration=1.0)
MICRO_UPSAMPLER = dict(n_ctx=64, prior_width=8, blocks=8, cond_width=8, **MICRO_LABELS)
MICRO_TOP = dict(n_ctx=64, prior_width=32, blocks=8, **MICRO_LABELS)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jukebox", default="/tmp/openai-jukebox", help="a checkout of github.com/openai/jukebox")
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.jukebox))
    install_shims()
    from jukebox.hparams import setup_hparams
    import jukebox.make_models as make_models

    torch.manual_seed(0)
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)

    # VQ-VAE
    hps = setup_hparams("vqvae", dict(restore_vqvae="", train=False, **MICRO_VQVAE))
    vqvae = make_models.make_vqvae(hps, device="cpu")
    randomize(vqvae, 1)
    T = hps.sample_length
    n = torch.arange(T, dtype=torch.float32) / 44100
    g = torch.Generator().manual_seed(2)
    audio = (0.4 * torch.sin(2 * np.pi * 220 * n) + 0.2 * torch.sin(2 * np.pi * 1375 * n + 1)
             + 0.05 * torch.randn(T, generator=g)).view(1, T, 1)
    with torch.no_grad():
        # Codebooks drawn around the level's own encoder outputs (their mean and spread), so
        # that codes vary without two entries nearly tying for any latent.
        for level, block in enumerate(vqvae.bottleneck.level_blocks):
            rows = vqvae.encoders[level](vqvae.preprocess(audio))[-1][0].t()      # (T_L, emb)
            block.k.copy_(rows.mean(0) + rows.std(0) * torch.randn(block.k.shape, generator=g))
        zs = vqvae.encode(audio)
        ref = {"input": audio.view(1, T).numpy()}
        for level, z in enumerate(zs):
            ref[f"codes.{level}"] = z.long().numpy()
            ref[f"recon.{level}"] = vqvae.decode([z], start_level=level, end_level=level + 1).view(1, T).numpy()
            # The margin between the best and second-best codebook distance: codes are compared
            # exactly, so they must not sit on a near-tie.
            block = vqvae.bottleneck.level_blocks[level]
            x = vqvae.encoders[level](vqvae.preprocess(audio))[-1][0].t()
            d = (x ** 2).sum(1, keepdim=True) - 2 * x @ block.k.t() + (block.k ** 2).sum(1)
            best2 = d.topk(2, dim=1, largest=False).values
            margin = float(((best2[:, 1] - best2[:, 0]) / best2[:, 0].abs().clamp(min=1e-12)).min())
            print(f"vqvae level {level}: {z.shape[1]} codes, {len(set(z[0].tolist()))} distinct, "
                  f"smallest relative distance margin {margin:.3g}")
            assert margin > 1e-5, "a near-tie between two codebook entries: change the seed"
    write_safetensors(os.path.join(OUT, "vqvae.ref.safetensors"), ref)
    save_both(make_models, vqvae, hps, "vqvae", 1000)

    # Priors: teacher-forced logits over a fixed code sequence with fixed labels.
    specs = [("prior_level_0", "upsampler_level_0", MICRO_UPSAMPLER, 3),
             ("prior_level_1", "upsampler_level_1", MICRO_UPSAMPLER, 4),
             ("prior_level_2", "prior_5b", MICRO_TOP, 5)]
    for name, preset, micro, seed in specs:
        hps = setup_hparams(preset, dict(restore_prior="", train=False, labels=True, **micro))
        prior = make_models.make_prior(hps, vqvae, device="cpu")
        randomize(prior, seed)
        g = torch.Generator().manual_seed(seed)
        n_ctx = hps.n_ctx
        z = torch.randint(0, vqvae.l_bins, (1, n_ctx), generator=g)
        sr = hps.sr
        total = int(0.7 * sr)
        y = torch.tensor([[total, int(0.25 * sr), n_ctx * int(prior.raw_to_tokens), 3, 1, 4, -1, -1, -1]])
        ref = {"z": z.numpy(), "y": y.numpy()}
        z_conds = []
        if prior.x_cond:
            z_cond = torch.randint(0, vqvae.l_bins, (1, n_ctx // prior.cond_downsample), generator=g)
            z_conds = [z_cond]
            ref["z_cond"] = z_cond.numpy()
        with torch.no_grad():
            loss, metrics = prior.z_forward(z, z_conds=z_conds, y=y, get_preds=True)
        ref["preds"] = metrics["preds"].float().numpy()
        ref["loss"] = np.array([float(loss)], dtype=np.float32)
        print(f"{name} ({preset}): {len(prior.state_dict())} keys, loss {float(loss):.4f} bits")
        write_safetensors(os.path.join(OUT, f"{name}.ref.safetensors"), ref)
        save_both(make_models, prior, hps, name, 2000 + seed)

    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT}: {total} bytes")


if __name__ == "__main__":
    main()
