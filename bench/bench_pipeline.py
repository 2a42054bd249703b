"""Time awq_ext.quantize on a Llama-shaped model with random weights, one block on the GPU at a time.

Default: Llama-2-7B shapes (32 blocks, hidden 4096, MLP 11008, 32 heads), 128 x 512 random calibration
tokens, w4 g128 zero point, fp16 weights held on the CPU. Reports total and per-block time (by step)
and the peak GPU memory allocated, against the size of one block plus its calibration activations,
with the peak of each step (capture, load, float, search, clip+quantize, next; the largest over the
blocks) so that a single run shows where the peak sits.
Random weights and tokens measure speed and memory only, never quality (see docs/quality.md).

  python bench/bench_pipeline.py [--layers 32] [--out bench/results/pipeline_<device>.md]
  python bench/bench_pipeline.py --small --device cpu      # tiny shapes, seconds: a smoke test
"""
from __future__ import annotations

import argparse
import datetime
import pathlib
import subprocess
import sys
import time

import torch

#: --small: a tiny Llama (2 blocks, hidden 256) on 24 x 256 tokens (2 batches, more tokens than the
#: search samples), to check the code path anywhere in about a minute
SMALL = dict(layers=2, hidden=256, intermediate=704, heads=4, vocab=1000, samples=24, seqlen=256, group=64,
             search_tokens=1024)


def build_model(args):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
                      num_hidden_layers=args.layers, num_attention_heads=args.heads,
                      num_key_value_heads=args.kv_heads or args.heads, max_position_embeddings=4096)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    model = model.to_empty(device="cpu").to(torch.float16)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32).mul_(0.02).to(p.dtype))
    # the rotary embedding's buffers are computed, not loaded: rebuild it on the CPU
    model.model.rotary_emb = type(model.model.rotary_emb)(config=cfg)
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--intermediate", type=int, default=11008)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=None)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--group", type=int, default=128)
    ap.add_argument("--search-tokens", type=int, default=None, help="scale-search tokens (default: AWQConfig's)")
    ap.add_argument("--device", default="cuda", help="cuda (the measurement) or cpu (a smoke test)")
    ap.add_argument("--small", action="store_true", help=f"tiny shapes for a smoke test: {SMALL}")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.small:
        for k, v in SMALL.items():
            setattr(args, k, v)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("bench_pipeline.py: no CUDA device (use --device cpu for a smoke test)")

    import logging

    from awq_ext.api import BATCH_TOKENS, quantize_with_report
    from awq_ext.config import AWQConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    t0 = time.perf_counter()
    model = build_model(args)
    build_s = time.perf_counter() - t0
    tokens = torch.randint(0, args.vocab, (args.samples, args.seqlen), generator=torch.Generator().manual_seed(1))
    block = model.model.layers[0]
    block_bytes = sum(p.numel() * p.element_size() for p in block.parameters())
    act_bytes = args.samples * args.seqlen * args.hidden * 2  # one fp16 hidden-state set
    batch_tokens = max(1, BATCH_TOKENS // args.seqlen) * args.seqlen  # tokens per calibration batch

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    config = AWQConfig(group_size=args.group)
    if args.search_tokens is not None:
        config = config.replace(search_tokens=args.search_tokens)
    _, reports = quantize_with_report(model, config, calib_data=tokens, device=args.device, progress=False,
                                      measure_memory=cuda)
    if cuda:
        torch.cuda.synchronize()
    total_s = time.perf_counter() - t0

    steps: dict[str, float] = {}
    for r in reports:
        for k, v in r.step_seconds.items():
            steps[k] = steps.get(k, 0.0) + v
    # per-step peaks (quantize resets the peak statistics at every step): the largest over the blocks
    step_peak: dict[str, tuple[int, int]] = {}  # step -> (bytes, block)
    for i, r in enumerate(reports):
        for k, v in r.step_peak_bytes.items():
            if v >= step_peak.get(k, (-1, 0))[0]:
                step_peak[k] = (v, i)
    after = torch.cuda.max_memory_allocated() if cuda else 0  # since the last step: the last block going home
    peak = max([after] + [v for v, _ in step_peak.values()])
    blocks_s = sum(r.seconds for r in reports)
    dev = torch.cuda.get_device_name() if cuda else "CPU"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    lines = [
        f"# awq_ext.quantize on a Llama-shaped random model, {dev}",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; commit {commit or 'n/a'}; "
        f"torch {torch.__version__}",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- model: {args.layers} blocks, hidden {args.hidden}, MLP {args.intermediate}, {args.heads} heads, fp16 "
        f"weights on the CPU; calibration {args.samples} x {args.seqlen} random tokens; w4 g{args.group} zero point, "
        f"scale search on {config.search_tokens} tokens",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| total quantize() time | {total_s:.1f} s |",
        f"| of which blocks | {blocks_s:.1f} s ({blocks_s / max(len(reports), 1):.2f} s per block) |",
        f"| capture of block inputs and the rest | {total_s - blocks_s:.1f} s |",
    ]
    lines += [f"| step: {k} | {v:.1f} s |" for k, v in steps.items()]
    lines += [
        f"| peak GPU memory allocated | {peak / 2**30:.2f} GiB |",
        f"| one block (fp16 weights) | {block_bytes / 2**30:.2f} GiB |",
        f"| one set of block inputs ({args.samples} x {args.seqlen} x {args.hidden} fp16) | {act_bytes / 2**30:.2f} GiB |",
        f"| peak / (block + inputs) | {peak / (block_bytes + act_bytes):.2f}x (target <= 1.5x) |",
        f"| model build (not timed above) | {build_s:.1f} s |",
    ]
    if cuda:
        gib = 2**30
        search = min(config.search_tokens or args.samples * args.seqlen, args.samples * args.seqlen)
        lines += [
            "",
            "Peak GPU memory allocated during each step, the largest over the blocks (each step's peak is "
            "measured from a reset of torch.cuda's peak statistics at its start):",
            "",
            "| step | time (all blocks) | peak allocated | at block | peak / (block + inputs) |",
            "|---|---|---|---|---|",
        ]
        for k, (v, i) in step_peak.items():
            t = f"{steps[k]:.1f} s" if k in steps else "-"
            lines.append(f"| {k} | {t} | {v / gib:.3f} GiB | {i} | {v / (block_bytes + act_bytes):.2f}x |")
        lines.append(f"| (after the last step) | - | {after / gib:.3f} GiB | - | - |")
        mib = 2**20
        lines += [
            "",
            f"Sizes for reading it: one block {block_bytes / mib:.0f} MiB; one calibration batch of {batch_tokens} "
            f"tokens: hidden state {batch_tokens * args.hidden * 2 / mib:.0f} MiB, MLP activation "
            f"{batch_tokens * args.intermediate * 2 / mib:.0f} MiB; scale-search samples of {search} tokens: "
            f"{search * args.hidden * 2 / mib:.0f} MiB per {args.hidden}-wide input, "
            f"{search * args.intermediate * 2 / mib:.0f} MiB for down_proj's input.",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
