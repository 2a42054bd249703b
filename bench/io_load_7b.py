"""Time awq_ext.io on a Llama-2-7B-shaped AWQ "gemm" checkpoint of random INT4 tensors.

  python bench/io_load_7b.py write  --out DIR [--layers 32]  # from-the-spec packer, streamed to disk
  python bench/io_load_7b.py load   --out DIR [--cold]       # load_quantized; --cold evicts the file first
  python bench/io_load_7b.py resave --out DIR --to DIR2      # load, save_quantized (2GB shards), compare
"""
import argparse
import json
import os
import resource
import struct
import sys
import time
from pathlib import Path

import numpy as np

ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # nibble i holds column 8c + ORDER[i]
H, I, V, G = 4096, 11008, 32000, 128
LINEARS = {"self_attn.q_proj": (H, H), "self_attn.k_proj": (H, H), "self_attn.v_proj": (H, H),
           "self_attn.o_proj": (H, H), "mlp.gate_proj": (H, I), "mlp.up_proj": (H, I), "mlp.down_proj": (I, H)}


def pack(codes):
    """codes uint8 [R, C] -> int32 [R, C/8], packed along C."""
    r, c = codes.shape
    g = codes.reshape(r, c // 8, 8)  # [R, C] -> [R, C/8, 8]
    word = np.zeros((r, c // 8), np.uint32)
    for i, e in enumerate(ORDER):
        word |= g[:, :, e].astype(np.uint32) << np.uint32(4 * i)
    return word.view(np.int32)


def tensors(layers, rng):
    """(name, safetensors dtype, shape, maker) in file order."""
    def f16(shape, s=0.02):
        return lambda: (rng.standard_normal(shape, np.float32) * s).astype(np.float16)

    yield "model.embed_tokens.weight", "F16", (V, H), f16((V, H))
    for layer in range(layers):
        p = f"model.layers.{layer}"
        for norm in ("input_layernorm", "post_attention_layernorm"):
            yield f"{p}.{norm}.weight", "F16", (H,), f16((H,), 1.0)
        for suffix, (k, n) in LINEARS.items():
            yield f"{p}.{suffix}.qweight", "I32", (k, n // 8), lambda k=k, n=n: pack(rng.integers(0, 16, (k, n), np.uint8))
            yield f"{p}.{suffix}.qzeros", "I32", (k // G, n // 8), lambda k=k, n=n: pack(rng.integers(0, 16, (k // G, n), np.uint8))
            yield f"{p}.{suffix}.scales", "F16", (k // G, n), lambda k=k, n=n: rng.uniform(1e-3, 2e-2, (k // G, n)).astype(np.float16)
    yield "model.norm.weight", "F16", (H,), f16((H,), 1.0)
    yield "lm_head.weight", "F16", (V, H), f16((V, H))


def write(out: Path, layers: int):
    from transformers import LlamaConfig

    out.mkdir(parents=True)
    rng = np.random.default_rng(0)
    items = list(tensors(layers, rng))
    size = {"F16": 2, "I32": 4}
    header, off = {}, 0
    for name, dt, shape, _ in items:
        nbytes = size[dt] * int(np.prod(shape))
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + nbytes]}
        off += nbytes
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    t0 = time.perf_counter()
    with open(out / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name, dt, shape, make in items:  # streamed: one tensor in memory at a time
            a = make()
            assert a.shape == shape, name
            f.write(a.tobytes())
    cfg = LlamaConfig(vocab_size=V, hidden_size=H, intermediate_size=I, num_hidden_layers=layers,
                      num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                      rms_norm_eps=1e-5, tie_word_embeddings=False).to_dict()
    cfg.update(architectures=["LlamaForCausalLM"], dtype="float16",
               quantization_config={"quant_method": "awq", "bits": 4, "group_size": G, "zero_point": True,
                                    "version": "gemm", "modules_to_not_convert": None})
    (out / "config.json").write_text(json.dumps(cfg))
    print(f"wrote {off / 1e9:.3f} GB in {time.perf_counter() - t0:.1f} s")


def load(out: Path, cold: bool):
    import torch

    import awq_ext.io as io

    if cold:  # drop only this checkpoint's pages from the page cache
        for f in out.glob("*.safetensors"):
            fd = os.open(f, os.O_RDONLY)
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
    spent = {"unpack_awq": 0.0}
    real = io.ops.unpack_awq

    def timed(*a):
        t = time.perf_counter()
        r = real(*a)
        spent["unpack_awq"] += time.perf_counter() - t
        return r
    io.ops.unpack_awq = timed
    t0 = time.perf_counter()
    model = io.load_quantized(out)
    total = time.perf_counter() - t0
    nq = sum(isinstance(m, io.Int4Linear) for m in model.modules())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"load_quantized: {total:.2f} s total, {spent['unpack_awq']:.2f} s in unpack_awq, "
          f"{nq} Int4Linear, peak RSS {rss:.2f} GiB, torch threads {torch.get_num_threads()}, cold={cold}")


def resave(src: Path, dst: Path):
    import torch
    from safetensors import safe_open

    from awq_ext import AWQConfig
    from awq_ext.io import load_quantized, save_quantized

    t0 = time.perf_counter()
    model = load_quantized(src)
    t1 = time.perf_counter()
    save_quantized(model, dst, AWQConfig(group_size=G), max_shard_size="2GB")
    t2 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    del model
    n = 0
    with safe_open(str(src / "model.safetensors"), "pt") as orig:
        for f in sorted(dst.glob("*.safetensors")):
            with safe_open(str(f), "pt") as h:
                for k in h.keys():
                    assert torch.equal(h.get_tensor(k), orig.get_tensor(k)), k
                    n += 1
        assert n == len(orig.keys()), (n, len(orig.keys()))
    print(f"load {t1 - t0:.1f} s, save_quantized {t2 - t1:.1f} s, peak RSS {rss:.2f} GiB; "
          f"{n} tensors identical to the originals in {len(list(dst.glob('*.safetensors')))} shards")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["write", "load", "resave"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--to", type=Path)
    ap.add_argument("--cold", action="store_true")
    a = ap.parse_args()
    if a.cmd == "write":
        write(a.out, a.layers)
    elif a.cmd == "load":
        load(a.out, a.cold)
    else:
        resave(a.out, a.to)
