"""Command line: `awq-ext quantize | eval | bench` (also `python -m awq_ext ...`).

Without --model, every subcommand uses the built-in SmolLM2-135M-Instruct and the built-in
Wikipedia text (awq_ext.data): nothing is downloaded.
"""
from __future__ import annotations

import argparse
import copy
import logging
import statistics
import sys
import time

import torch

log = logging.getLogger("awq_ext")

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# ---- model loading ------------------------------------------------------------------------------
def _device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return DTYPES[name]


def load_model(path: str | None, gguf_file: str | None, dtype: torch.dtype, device: torch.device):
    """(model, tokenizer, label): the built-in default when path is None, else a transformers folder."""
    if path is None:
        from awq_ext import data

        model, tok = data.load_default_model(dtype=dtype, device=device)
        return model, tok, "SmolLM2-135M-Instruct (built-in GGUF)"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = {"gguf_file": gguf_file} if gguf_file else {}
    tok = AutoTokenizer.from_pretrained(path, **kw)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kw)
    if gguf_file and getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config  # describes the GGUF file, not this float model
    return model.to(device).eval(), tok, path


def _config_from_args(args):
    from awq_ext.config import AWQConfig

    return AWQConfig(bits=args.bits, group_size=args.group_size, zero_point=not args.no_zero_point,
                     n_samples=args.samples, seqlen=args.seqlen, search_tokens=args.search_tokens or None,
                     clip_tokens=args.clip_tokens, clip=not args.no_clip, duo_scaling=args.duo_scaling,
                     n_grid=args.n_grid, modules_to_not_convert=tuple(args.skip or ()),
                     indivisible=args.indivisible, seed=args.seed)


# ---- sizes and speed ------------------------------------------------------------------------------
def model_bytes(model: torch.nn.Module) -> tuple[int, int]:
    """(all bytes, bytes of block linears: nn.Linear weights/bias or Int4Linear buffers); shared storage once."""
    from awq_ext.nn import Int4Linear

    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        key = (t.untyped_storage().data_ptr(), t.device)
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    lin = 0
    from awq_ext.adapters import get_adapter

    for m in get_adapter(model).get_blocks(model).modules():
        if isinstance(m, (torch.nn.Linear, Int4Linear)):
            lin += sum(t.numel() * t.element_size() for t in list(m.parameters()) + list(m.buffers()))
    return total, lin


@torch.no_grad()
def decode_tokens_per_second(model, device: torch.device, new_tokens: int = 128, prompt_len: int = 32) -> float:
    """Greedy decoding speed, batch 1, KV cache on: median of 3 timed runs after a warm-up run."""
    vocab = model.get_input_embeddings().num_embeddings
    ids = torch.randint(0, vocab, (1, prompt_len), device=device, generator=torch.Generator(device).manual_seed(0))
    mask = torch.ones_like(ids)

    def run(n):
        model.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                       pad_token_id=model.config.eos_token_id)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    # warm-up with the timed length: kernels load lazily and an idle GPU needs a moment to raise its
    # clocks (on an H200, a float model timed first read 10x slow after an 8-token warm-up)
    run(new_tokens)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        run(new_tokens)
        times.append(time.perf_counter() - t0)
    return new_tokens / sorted(times)[1]   # median of 3


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


# ---- subcommands -----------------------------------------------------------------------------------
def cmd_quantize(args) -> int:
    from awq_ext import api, data
    from awq_ext.eval import perplexity

    device = _device(args.device)
    dtype = _dtype(args.dtype, device)
    config = _config_from_args(args)
    api.check_config(config)
    t_load = time.perf_counter()
    model, tok, label = load_model(args.model, args.gguf_file, dtype, device)
    log.info("loaded %s (%s, %s) in %.1f s", label, dtype, device, time.perf_counter() - t_load)

    calib = None
    if args.calib_text:
        with open(args.calib_text, encoding="utf-8") as f:
            calib = [p for p in f.read().split("\n\n") if p.strip()]

    rows = []
    if args.compare:
        ev = data.eval_tokens(tok, args.eval_tokens)
        res = perplexity(model, ev, window=args.window)
        rows.append(("float", res, model_bytes(model), None))
        log.info("float perplexity %.3f (%.1f s)", res.perplexity, res.seconds)
        float_tps = decode_tokens_per_second(model, device) if device.type == "cuda" else None
        rtn_model = copy.deepcopy(model)
        t0 = time.perf_counter()
        api.round_to_nearest(rtn_model, config)
        t_rtn = time.perf_counter() - t0
        res = perplexity(rtn_model, ev, window=args.window)
        rows.append(("RTN", res, model_bytes(rtn_model), t_rtn))
        log.info("RTN perplexity %.3f (%.1f s)", res.perplexity, res.seconds)
        del rtn_model

    t0 = time.perf_counter()
    model, reports = api.quantize_with_report(model, config, calib, tokenizer=tok, device=device,
                                              progress=False if args.no_progress else None)
    t_awq = time.perf_counter() - t0
    log.info("AWQ done in %.1f s (%.1f s per block)", t_awq, t_awq / max(len(reports), 1))

    if args.compare:
        res = perplexity(model, ev, window=args.window)
        rows.append(("AWQ", res, model_bytes(model), t_awq))
        _print_table(rows, config, args, device, label, model, len(reports), float_tps)

    if args.out:
        from awq_ext.io import save_quantized

        out = save_quantized(model, args.out, config, tokenizer=tok, overwrite=args.overwrite)
        print(f"saved to {out}")
    return 0


def _print_table(rows, config, args, device, label, awq_model, n_blocks, float_tps):
    f_ppl = rows[0][1].perplexity
    r_ppl = rows[1][1].perplexity
    zp = "zero point" if config.zero_point else "symmetric"
    print()
    print(f"{label}: w{config.bits} g{config.group_size} {zp}; calibration {config.n_samples} x {config.seqlen} "
          f"tokens, search on <= {config.search_tokens} tokens; device {device}")
    print(f"perplexity: held-out Wikipedia split, {rows[0][1].tokens + rows[0][1].windows} tokens in windows of "
          f"{args.window}")
    print()
    head = ("model", "perplexity", "vs float", "RTN increase recovered", "size (all)", "size (block linears)",
            "quantization time", "eval tok/s")
    lines = []
    for name, res, (total, lin), secs in rows:
        ppl = res.perplexity
        rec = "" if name != "AWQ" or r_ppl == f_ppl else f"{100 * (r_ppl - ppl) / (r_ppl - f_ppl):.1f} %"
        t = "" if secs is None else (f"{secs:.1f} s" + (f" ({secs / n_blocks:.1f} s/block)" if name == "AWQ" else ""))
        lines.append((name, f"{ppl:.3f}", "" if name == "float" else f"{ppl - f_ppl:+.3f}", rec, _mb(total),
                      _mb(lin), t, f"{res.tokens_per_second:.0f}"))
    widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(head)]
    fmt = "| " + " | ".join(f"{{:{w}}}" for w in widths) + " |"
    print(fmt.format(*head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in lines:
        print(fmt.format(*r))
    if device.type == "cuda":
        awq_tps = decode_tokens_per_second(awq_model, device)
        print(f"decode tokens/s on {torch.cuda.get_device_name(device)} (batch 1, greedy, 128 new tokens): "
              f"float {float_tps:.1f}, AWQ {awq_tps:.1f} ({awq_tps / float_tps:.2f}x)")
    else:
        print("decode tokens/s on a GPU: n/a (this run is on the CPU)")
    print()


def cmd_eval(args) -> int:
    from awq_ext import data
    from awq_ext.eval import perplexity, text_tokens

    device = _device(args.device)
    dtype = _dtype(args.dtype, device)
    if args.quantized:
        from transformers import AutoTokenizer

        from awq_ext.io import load_quantized

        model = load_quantized(args.quantized, device=device, dtype=None if args.dtype == "auto" else dtype)
        tok = AutoTokenizer.from_pretrained(args.quantized)
        label = args.quantized
    else:
        model, tok, label = load_model(args.model, args.gguf_file, dtype, device)
    if args.text:
        with open(args.text, encoding="utf-8") as f:
            tokens = text_tokens(tok, f.read())
        source = args.text
    else:
        tokens = data.eval_tokens(tok, args.tokens)
        source = "built-in held-out Wikipedia split"
    res = perplexity(model, tokens, window=args.window, n_tokens=args.tokens)
    print(f"{label}: perplexity {res.perplexity:.4f} on {source} ({res.tokens + res.windows} tokens, "
          f"{res.windows} windows of {args.window}, {res.seconds:.1f} s)")
    return 0


BENCH_SHAPES = ((576, 576), (1536, 576), (576, 1536), (4096, 4096), (11008, 4096), (4096, 11008))


def _time_call(fn, device: torch.device, iters: int) -> float:
    """Median seconds of fn() over iters calls (after warm-up)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.no_grad()
def cmd_bench(args) -> int:
    from awq_ext.nn import Int4Linear

    device = _device(args.device)
    dtype = _dtype(args.dtype, device)
    shapes = [tuple(int(v) for v in s.lower().split("x")) for s in args.shapes] if args.shapes else BENCH_SHAPES
    print(f"Int4Linear (w4 g{args.group_size}) vs nn.Linear, {dtype}, {device}; median of {args.iters} calls")
    head = ("N x K", "M", "nn.Linear us", "Int4Linear us", "speedup")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for n, k in shapes:
        lin = torch.nn.Linear(k, n, bias=False, device=device, dtype=dtype)
        q = Int4Linear.from_linear(lin, args.group_size, True)
        for m in args.m:
            x = torch.randn(m, k, device=device, dtype=dtype)
            t_f = _time_call(lambda: lin(x), device, args.iters)
            t_q = _time_call(lambda: q(x), device, args.iters)
            print(f"| {n} x {k} | {m} | {t_f * 1e6:.1f} | {t_q * 1e6:.1f} | {t_f / t_q:.2f}x |")
    return 0


# ---- argument parsing ---------------------------------------------------------------------------------
def _add_model_args(p):
    p.add_argument("--model", default=None, help="transformers model folder (default: built-in SmolLM2-135M)")
    p.add_argument("--gguf-file", default=None, help="GGUF file name inside --model")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda if available)")
    p.add_argument("--dtype", default="auto", choices=["auto", *DTYPES], help="auto: float16 on CUDA, float32 on CPU")


def build_parser() -> argparse.ArgumentParser:
    from awq_ext.config import AWQConfig
    from awq_ext.eval import DEFAULT_EVAL_TOKENS, DEFAULT_WINDOW

    d = AWQConfig()
    parser = argparse.ArgumentParser(prog="awq-ext", description=__doc__.splitlines()[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quantize", help="AWQ-quantize a model (optionally compare float / RTN / AWQ perplexity)")
    _add_model_args(q)
    q.add_argument("--out", default=None, help="save the quantized checkpoint here (AutoAWQ gemm format)")
    q.add_argument("--overwrite", action="store_true")
    q.add_argument("--bits", type=int, default=d.bits)
    q.add_argument("--group-size", type=int, default=d.group_size)
    q.add_argument("--no-zero-point", action="store_true", help="symmetric quantization")
    q.add_argument("--samples", type=int, default=d.n_samples, help="calibration samples")
    q.add_argument("--seqlen", type=int, default=d.seqlen, help="tokens per calibration sample")
    q.add_argument("--search-tokens", type=int, default=d.search_tokens,
                   help="at most this many tokens in the scale-search loss (0: all)")
    q.add_argument("--clip-tokens", type=int, default=d.clip_tokens)
    q.add_argument("--n-grid", type=int, default=d.n_grid)
    q.add_argument("--no-duo-scaling", dest="duo_scaling", action="store_false",
                   help="search s = mean|x|^alpha alone (default: weight-aware duo scaling)")
    q.add_argument("--no-clip", action="store_true")
    q.add_argument("--skip", nargs="*", help="names (substrings) of linears to keep in float")
    q.add_argument("--indivisible", default=d.indivisible, choices=["error", "keep"])
    q.add_argument("--seed", type=int, default=d.seed)
    q.add_argument("--calib-text", default=None, help="UTF-8 text file (paragraphs split on blank lines)")
    q.add_argument("--compare", action="store_true",
                   help="also evaluate the float and round-to-nearest models and print a table")
    q.add_argument("--eval-tokens", type=int, default=DEFAULT_EVAL_TOKENS)
    q.add_argument("--window", type=int, default=DEFAULT_WINDOW)
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_quantize)

    e = sub.add_parser("eval", help="perplexity of a float or quantized model")
    _add_model_args(e)
    e.add_argument("--quantized", default=None, help="checkpoint folder written by `awq-ext quantize --out`")
    e.add_argument("--text", default=None, help="UTF-8 text file (default: the built-in held-out split)")
    e.add_argument("--tokens", type=int, default=DEFAULT_EVAL_TOKENS)
    e.add_argument("--window", type=int, default=DEFAULT_WINDOW)
    e.set_defaults(func=cmd_eval)

    b = sub.add_parser("bench", help="time Int4Linear against nn.Linear on this device")
    b.add_argument("--device", default=None)
    b.add_argument("--dtype", default="auto", choices=["auto", *DTYPES])
    b.add_argument("--group-size", type=int, default=128)
    b.add_argument("--shapes", nargs="*", help="N x K, e.g. 4096x4096")
    b.add_argument("--m", type=int, nargs="*", default=[1, 16, 256], help="rows of x")
    b.add_argument("--iters", type=int, default=20)
    b.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    from tqdm.contrib.logging import logging_redirect_tqdm

    try:
        with logging_redirect_tqdm():
            return args.func(args)
    except (ValueError, OSError) as e:
        print(f"awq-ext: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
