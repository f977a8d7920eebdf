#!/usr/bin/env python3
"""Writes the PyTorch checkpoint fixtures of Tests/TorchCheckpointTests/Fixtures.

Tiny checkpoints shaped like OpenAI's Jukebox files ({'hps', 'model', 'opt', 'step'}, with
official-style tensor names), saved by torch itself in both formats:

  tiny.legacy.pth.tar   torch.save(..., _use_new_zipfile_serialization=False): the format of
                        the released files (torch 1.4)
  tiny.zip.pth.tar      torch.save(...) as torch >= 1.6 writes it; its top folder is renamed
                        by torch after the file's stem
  opt.legacy.pth.tar    the same model with an Adam optimizer's state in 'opt' (lists, int
                        keys, scalar step tensors)
  tiny.json             per tensor: dtype, shape, strides, storage offset and every value;
                        the step and some hps values

and, in Tests/JukeboxKitTests/Fixtures/fuzz-crashes/torch-checkpoint/, hand-made hostile and
broken files that the reader must refuse (replayed by FuzzCorpusTests): pickles that call
os.system or eval, forbidden opcodes, absurd sizes, self-containing and deeply nested values,
truncated and compressed files.

The values are synthetic (a seeded generator), not OpenAI weights. The model holds F32 and F16
tensors, a tied pair sharing one tensor (1b_lyrics' x_out/x_emb), a transposed view and an
offset slice of a shared storage, a 0-dimensional tensor and an empty one; the state dict
carries `_metadata`, as nn.Module.state_dict() does, so the pickle has a BUILD.

Needs torch (any 2.x; CPU is enough):  python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch
Run from the repository root:          /tmp/venv/bin/python scripts/make-torch-fixtures.py
The files differ from run to run only in storage keys (legacy: pointer values) and the zip's
serialization id; the tests compare decoded tensors, not bytes.
"""
import json
import os
import pickletools
import sys
from collections import OrderedDict

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "TorchCheckpointTests", "Fixtures")


def model_state():
    g = torch.Generator().manual_seed(1234)
    rand = lambda *shape: torch.randn(*shape, generator=g)
    x_emb = rand(10, 6)
    big = rand(4, 9)  # one storage with two views of it below
    shared = rand(20)
    state = OrderedDict()
    state["encoders.0.level_blocks.0.model.0.0.weight"] = rand(8, 2, 4)
    state["encoders.0.level_blocks.0.model.0.0.bias"] = rand(8)
    state["bottleneck.level_blocks.0.k"] = rand(16, 4)
    state["prior.x_emb.weight"] = x_emb
    state["prior.x_out.weight"] = x_emb  # tied, as in 1b_lyrics
    state["prior.pos_emb.pos_emb"] = rand(5, 6)
    state["prior.transformer._attn_mods.0.attn.c_attn.w"] = rand(6, 9).half()
    state["prior.transformer._attn_mods.0.attn.c_attn.b"] = rand(9)
    state["prior.transformer._attn_mods.0.attn.c_proj.w"] = big.t()  # non-contiguous: strides (1, 9)
    state["prior.transformer._attn_mods.0.attn.c_proj.b"] = big[1]  # offset 9 into the same storage
    state["prior.transformer._attn_mods.0.ln_0.weight"] = shared[3:9]  # offset slice of a storage
    state["prior.transformer._attn_mods.0.ln_0.bias"] = shared[10:16].view(2, 3)
    state["prior.transformer._attn_mods.0.mlp.c_fc.w"] = rand(6, 6).half()
    state["prior.transformer._attn_mods.0.mlp.c_fc.b"] = torch.tensor(0.25)  # 0-dimensional
    state["prior.transformer._attn_mods.0.mlp.c_proj.b"] = torch.zeros(0)  # empty
    state._metadata = OrderedDict([("", {"version": 1}), ("prior", {"version": 1})])
    return state


HPS = {
    "name": "tiny",
    "sr": 44100,
    "levels": 3,
    "downs_t": (3, 2, 2),
    "multipliers": [2, 1, 1],
    "lr": 0.0003,
    "l_bins": 2048,
    "fp16_params": True,
    "labels": False,
    "alignment_head": None,
    "large_int": 2**40,
    "negative": -7,
    "huge_int": 2**70,
    "nested": {"width": 64, "eps": 1e-8, "kind": "vqvae"},
}
STEP = 123456


def save(obj, name, legacy):
    path = os.path.join(OUT, name)
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def opcodes(path):
    """The opcodes and globals of every pickle in the file."""
    import io
    import zipfile
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(path) as z:
            pickles = [z.read(n) for n in z.namelist() if n.endswith("/data.pkl")]
    else:
        pickles, f = [], io.BytesIO(data)
        for _ in range(5):
            start = f.tell()
            pickletools.dis(f, out=io.StringIO())  # advances f past the pickle's STOP
            pickles.append(data[start:f.tell()])
    names, globals_ = set(), set()
    for p in pickles:
        for op, arg, _ in pickletools.genops(p):
            names.add(op.name)
            if op.name == "GLOBAL":
                globals_.add(arg.replace(" ", "."))
    return names, globals_


HOSTILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "JukeboxKitTests", "Fixtures",
                       "fuzz-crashes", "torch-checkpoint")


def legacy(obj_pickle, storages=()):
    """A legacy file around a hand-made object pickle: magic, version, sys info, the object,
    the key list, then (key, count, data) storages."""
    import struct
    out = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19."
    out += b"\x80\x02M\xe9\x03."
    out += b"\x80\x02}X\x0d\x00\x00\x00little_endian\x88s."
    out += obj_pickle
    keys = b"".join(b"X" + struct.pack("<I", len(k)) + k.encode() for k, _, _ in storages)
    out += b"\x80\x02](" + keys + b"e."
    for _, count, data in storages:
        out += struct.pack("<q", count) + data
    return out


def tensor_pickle(count, shape, stride, key="1", offset=0):
    """{'model': {'w': _rebuild_tensor_v2(storage key of `count` floats, offset, shape, stride, ...)}}"""
    import struct
    ints = lambda xs: b"(" + b"".join(b"J" + struct.pack("<i", x) if -2**31 <= x < 2**31 else b"\x8a\x08" + struct.pack("<q", x)
                                       for x in xs) + b"t"
    pid = b"((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX" + struct.pack("<I", len(key)) + key.encode()
    pid += b"X\x03\x00\x00\x00cpu\x8a\x08" + struct.pack("<q", count) + b"NtQ"
    rebuild = b"ctorch._utils\n_rebuild_tensor_v2\n" + pid + ints([offset])[1:-1] + ints(shape) + ints(stride)
    rebuild += b"\x89ccollections\nOrderedDict\n)Rt" + b"R"
    return b"\x80\x02}X\x05\x00\x00\x00model}X\x01\x00\x00\x00w" + rebuild + b"ss."


def hostile_inputs(tiny_legacy, tiny_zip):
    import zipfile
    os.makedirs(HOSTILE, exist_ok=True)
    files = {
        "os-system.pth": legacy(b"\x80\x02cos\nsystem\nX\x0a\x00\x00\x00echo pwned\x85R."),
        "builtins-eval-stack-global.pth": legacy(b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x011\x85R."),
        "inst.pth": legacy(b"\x80\x02(ios\nsystem\nX\x02\x00\x00\x00id."),
        "newobj.pth": legacy(b"\x80\x02ccollections\nOrderedDict\n)\x81."),
        "storage-2-62-elements.pth": legacy(tensor_pickle(2**62, [4], [1]), [("1", 4, b"\0" * 16)]),
        "shape-overflow.pth": legacy(tensor_pickle(4, [2**32, 2**32], [1, 1]), [("1", 4, b"\0" * 16)]),
        "view-past-storage.pth": legacy(tensor_pickle(4, [2, 3], [3, 1]), [("1", 4, b"\0" * 16)]),
        "storage-count-mismatch.pth": legacy(tensor_pickle(4, [4], [1]), [("1", 2**62, b"\0" * 16)]),
        "list-contains-itself.pth": legacy(b"\x80\x02]q\x00h\x00a."),
        "nested-1000-deep.pth": legacy(b"\x80\x02)" + b"\x85" * 1000 + b"."),
        "truncated.legacy.pth.tar": tiny_legacy[: len(tiny_legacy) * 3 // 4],
        "truncated.zip.pth.tar": tiny_zip[: len(tiny_zip) - 30],
    }
    for name, data in files.items():
        with open(os.path.join(HOSTILE, name), "wb") as f:
            f.write(data)
    # The zip fixture re-packed with deflate: torch writes stored entries only.
    with zipfile.ZipFile(os.path.join(OUT, "tiny.zip.pth.tar")) as source, \
            zipfile.ZipFile(os.path.join(HOSTILE, "compressed.zip.pth"), "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info.filename))


def main():
    os.makedirs(OUT, exist_ok=True)
    state = model_state()
    checkpoint = {"hps": HPS, "model": state, "opt": None, "step": STEP}
    paths = [save(checkpoint, "tiny.legacy.pth.tar", legacy=True), save(checkpoint, "tiny.zip.pth.tar", legacy=False)]

    # Adam's state after one step over a copy of the F32 parameters.
    params = [p.clone().requires_grad_() for p in state.values() if p.dtype == torch.float32 and p.numel() > 1][:3]
    opt = torch.optim.Adam(params, lr=1e-3)
    sum((p * p).sum() for p in params).backward()
    opt.step()
    paths.append(save({"hps": HPS, "model": state, "opt": opt.state_dict(), "step": STEP}, "opt.legacy.pth.tar", legacy=True))

    expected = {"step": STEP, "hps": {k: HPS[k] for k in ("name", "sr", "lr", "large_int", "negative")}, "tensors": []}
    for name, t in state.items():
        expected["tensors"].append({
            "name": "model." + name,
            "dtype": {torch.float32: "F32", torch.float16: "F16"}[t.dtype],
            "shape": list(t.shape),
            "strides": list(t.stride()),
            "storage_offset": t.storage_offset(),
            "values": [float(v) for v in t.float().flatten().tolist()],
        })
    with open(os.path.join(OUT, "tiny.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")

    with open(paths[0], "rb") as a, open(paths[1], "rb") as b:
        hostile_inputs(a.read(), b.read())

    for path in paths:
        names, globals_ = opcodes(path)
        print(f"{os.path.basename(path)}: {os.path.getsize(path)} bytes; torch {torch.__version__}", file=sys.stderr)
        print(f"  opcodes: {' '.join(sorted(names))}", file=sys.stderr)
        print(f"  globals: {' '.join(sorted(globals_))}", file=sys.stderr)


if __name__ == "__main__":
    main()
