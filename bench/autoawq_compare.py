"""AutoAWQ 0.2.9 on the built-in SmolLM2-135M with awq_ext's calibration tokens, scored by awq_ext.

Purpose: issue #6 asks that awq_ext's AWQ (w4 g64 zero point, docs/quality.md) be no worse than
AutoAWQ 0.2.9 run on the same model, calibration and evaluation text. This script runs AutoAWQ on
exactly the calibration tokens awq_ext uses (32 consecutive 512-token windows of the calibration
split, awq_ext/data.py), saves its checkpoint, then scores that checkpoint with awq_ext's loader
and perplexity (awq_ext/eval.py: held-out split, first 16,384 tokens, 32 windows of 512).

It needs a separate virtual environment: AutoAWQ 0.2.9 does not import under transformers 5.x.
    python -m venv /tmp/aawq_venv --system-site-packages
    /tmp/aawq_venv/bin/pip install "transformers==4.51.3" "tokenizers<0.22" "huggingface_hub<1.0" \
        datasets zstandard
    /tmp/aawq_venv/bin/pip install --no-deps autoawq==0.2.9          # no autoawq-kernels: CPU only

The two commands (from the repository root):
    nice -n 19 /tmp/aawq_venv/bin/python bench/autoawq_compare.py quantize --out /tmp/aawq_smollm2_w4g64
    nice -n 19 python bench/autoawq_compare.py eval --out /tmp/aawq_smollm2_w4g64

`quantize` (venv) loads SmolLM2 float32 on the CPU, builds the calibration windows with
awq_ext/data.py (loaded by file path, so the compiled awq_ext is not needed), hands them to AutoAWQ
as token ids (AutoAWQ concatenates them and cuts 512-token blocks: the same 32 x 512 tokens),
quantizes (w_bit 4, q_group_size 64, zero_point, GEMM; AutoAWQ defaults otherwise) with one CPU fix
(AutoAWQ's scale search restores weights from `.cpu()` aliases of the live tensors on a CPU-only
machine, which corrupts the model; the fix hands it copies, as its GPU path gets; --unpatched
leaves it as shipped), times every block, saves the checkpoint, and as a cross-check scores AutoAWQ's own dequantization of its packed
tensors (awq.utils.packing_utils.dequantize_gemm) in the venv.
`eval` (main environment) checks that the venv saw the same float weights, calibration tokens and
evaluation tokens, loads the checkpoint with awq_ext.load_quantized and scores it with
awq_ext.eval.perplexity, and also scores a hand dequantization of the safetensors (no awq_ext.io).
Both append to <out>/autoawq_compare.json.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_SAMPLES, SEQLEN, GROUP_SIZE = 32, 512, 64
EVAL_TOKENS, WINDOW = 16384, 512
REPORT = "autoawq_compare.json"


def _load_by_path(name: str, rel: str):
    """Import one of awq_ext's pure-Python modules by file path (no compiled extension needed)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, rel))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look the module up by name
    spec.loader.exec_module(mod)
    return mod


def _sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().cpu().numpy().tobytes()).hexdigest()


def float_fingerprint(model) -> str:
    """sha256 over (name, float32 bytes) of all parameters, in name order (tied weights once)."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        h.update(name.encode())
        h.update(p.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def _update_report(out: str, key: str, value) -> None:
    path = os.path.join(out, REPORT)
    rep = {}
    if os.path.exists(path):
        with open(path) as f:
            rep = json.load(f)
    rep[key] = value
    with open(path, "w") as f:
        json.dump(rep, f, indent=1)


# ---- venv: run AutoAWQ ------------------------------------------------------------------------
def cmd_quantize(args) -> None:
    # AutoAWQ imports its optional CUDA kernel module under the name "awq_ext", which is this
    # project's package name: block it so AutoAWQ takes its plain PyTorch paths.
    sys.modules["awq_ext"] = None
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import awq
    from awq.models._config import AwqConfig
    from awq.models.llama import LlamaAWQForCausalLM
    from awq.modules.linear import WQLinear_GEMM
    from awq.quantize.quantizer import AwqQuantizer
    from awq.utils.packing_utils import dequantize_gemm

    data = _load_by_path("_awq_ext_data", "awq_ext/data.py")
    if args.smoke:  # plumbing test only: 2 blocks, 4 samples
        global N_SAMPLES
        N_SAMPLES = 4
    ev = _load_by_path("_awq_ext_eval", "awq_ext/eval.py")
    torch.manual_seed(0)

    t0 = time.perf_counter()
    folder = data.default_model_dir()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=data.MODEL_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=data.MODEL_FILE, torch_dtype=torch.float32)
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config  # describes the GGUF file, not this float model
    model.eval()
    if args.smoke:
        model.model.layers = model.model.layers[:2]
        model.config.num_hidden_layers = 2
    print(f"loaded in {time.perf_counter() - t0:.1f} s; transformers {transformers.__version__}, "
          f"autoawq {awq.__version__}, torch {torch.__version__}", flush=True)
    fingerprint = float_fingerprint(model)

    calib = data.calibration_samples(tok, N_SAMPLES, SEQLEN)          # [32, 512] int64
    eval_ids = data.eval_tokens(tok, EVAL_TOKENS)                      # [16384]

    class TimedQuantizer(AwqQuantizer):
        """AutoAWQ's quantizer with wall-clock per block and per phase (AutoAWQ's code is unchanged)."""

        def __init__(self, *a, **kw):
            self.blocks: list[dict] = []
            self._t_block = None
            t = time.perf_counter()
            super().__init__(*a, **kw)
            self.init_seconds = time.perf_counter() - t
            # what AutoAWQ made of calib_data: must be exactly awq_ext's windows
            self.calib_input_shape = list(self.inps.shape)

        def _phase(self, name, fn, *a, **kw):
            t = time.perf_counter()
            r = fn(*a, **kw)
            self.blocks[-1][name] = self.blocks[-1].get(name, 0.0) + time.perf_counter() - t
            return r

        def _close_block(self):
            if self.blocks and "total" not in self.blocks[-1]:
                b = self.blocks[-1]
                b["total"] = time.perf_counter() - self._t_block
                print(f"block {len(self.blocks) - 1:2d}: {b['total']:6.1f} s (float pass + features "
                      f"{b.get('input_feat', 0):.1f}, scale search {b.get('scale_search', 0):.1f}, clip search "
                      f"{b.get('clip_search', 0):.1f}, quantize + pack {b.get('apply_quant', 0):.1f})", flush=True)

        def _get_input_feat(self, layer, named_linears):  # first step of every block
            self._close_block()
            self._t_block = time.perf_counter()
            self.blocks.append({})
            return self._phase("input_feat", super()._get_input_feat, layer, named_linears)

        def _search_best_scale(self, *a, **kw):
            return self._phase("scale_search", super()._search_best_scale, *a, **kw)

        def _compute_best_scale(self, x, w_mean, x_mean, module2inspect, *a, **kw):
            # AutoAWQ 0.2.9 saves the module's weights as {k: v.cpu()} before the grid search and
            # restores them after each grid point. On a GPU .cpu() copies; on the CPU it returns the
            # live tensor, which the grid's in-place fc.weight.mul_(scales) then changes, so the
            # "restored" weights keep the first grid point's scales and the final model is wrong
            # (perplexity ~1.6e5 here). With --unpatched this is left as is; by default state_dict()
            # hands out clones for this call, which is what the GPU path gets.
            if args.unpatched:
                return super()._compute_best_scale(x, w_mean, x_mean, module2inspect, *a, **kw)
            orig = module2inspect.state_dict
            module2inspect.state_dict = lambda *sa, **skw: {k: v.clone() for k, v in orig(*sa, **skw).items()}
            try:
                return super()._compute_best_scale(x, w_mean, x_mean, module2inspect, *a, **kw)
            finally:
                del module2inspect.state_dict

        def _search_best_clip(self, *a, **kw):
            return self._phase("clip_search", super()._search_best_clip, *a, **kw)

        def _apply_quant(self, *a, **kw):
            return self._phase("apply_quant", super()._apply_quant, *a, **kw)

        def quantize(self):
            super().quantize()
            self._close_block()

    awq_model = LlamaAWQForCausalLM(model, "llama", is_quantized=False, config=model.config,
                                    quant_config=AwqConfig(), processor=None)
    quant_config = {"w_bit": 4, "q_group_size": GROUP_SIZE, "zero_point": True, "version": "GEMM"}
    t0 = time.perf_counter()
    awq_model.quantize(tok, quant_config=quant_config, calib_data=calib.tolist(),
                       max_calib_samples=N_SAMPLES, max_calib_seq_len=SEQLEN, quantizer_cls=TimedQuantizer)
    t_quant = time.perf_counter() - t0
    q = awq_model.quantizer
    print(f"AutoAWQ quantize: {t_quant:.1f} s ({t_quant / len(q.blocks):.1f} s per block; capturing the "
          f"calibration inputs {q.init_seconds:.1f} s); calibration input {q.calib_input_shape}", flush=True)

    t0 = time.perf_counter()
    try:
        awq_model.save_quantized(args.out)
        tok.save_pretrained(args.out)
    except Exception:  # keep the 20-minute result: dump the raw state dict, go on with the cross-check
        import traceback
        traceback.print_exc()
        os.makedirs(args.out, exist_ok=True)
        torch.save(model.state_dict(), os.path.join(args.out, "state_dict_fallback.pt"))
    t_save = time.perf_counter() - t0

    # cross-check: AutoAWQ's own dequantization of its packed tensors, scored in this venv
    n_swapped = 0
    for name, mod in list(model.named_modules()):
        if isinstance(mod, WQLinear_GEMM):
            w = dequantize_gemm(mod.qweight, mod.qzeros, mod.scales, mod.w_bit, mod.group_size)  # [K, N]
            lin = torch.nn.Linear(mod.in_features, mod.out_features, bias=mod.bias is not None)
            lin.weight.data = w.t().float().contiguous()
            if mod.bias is not None:
                lin.bias.data = mod.bias.float()
            parent, child = name.rsplit(".", 1)
            setattr(model.get_submodule(parent), child, lin)
            n_swapped += 1
    res = ev.perplexity(model.float(), eval_ids, window=WINDOW)
    print(f"cross-check (AutoAWQ dequantize_gemm, venv): perplexity {res.perplexity:.4f} over {n_swapped} "
          f"dequantized linears ({res.seconds:.1f} s)", flush=True)

    _update_report(args.out, "quantize", {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "host": platform.node(), "cpus": os.cpu_count(),
        "versions": {"autoawq": awq.__version__, "transformers": transformers.__version__,
                     "torch": torch.__version__, "python": platform.python_version()},
        "quant_config": quant_config, "cpu_state_dict_alias_patched": not args.unpatched, "duo_scaling": True, "apply_clip": True,
        "calib_ids_shape": list(calib.shape), "calib_ids_sha256": _sha(calib),
        "autoawq_calib_input_shape": q.calib_input_shape,
        "eval_ids_sha256": _sha(eval_ids), "float_fingerprint": fingerprint,
        "seconds_quantize": t_quant, "seconds_capture_inputs": q.init_seconds, "seconds_save": t_save,
        "blocks": q.blocks,
        "crosscheck_dequantize_gemm_perplexity": res.perplexity,
    })
    print(f"saved to {args.out}")


# ---- main environment: score with awq_ext --------------------------------------------------------
def _hand_dequantized(out: str, float_model):
    """float_model with every quantized linear and every other tensor taken from out's safetensors,
    unpacked here without awq_ext.io (AutoAWQ gemm layout: 8 nibbles per int32 along N, in the
    order 0 2 4 6 1 3 5 7)."""
    from safetensors.torch import load_file

    sd = {}
    for fn in sorted(os.listdir(out)):
        if fn.endswith(".safetensors"):
            sd.update(load_file(os.path.join(out, fn)))
    order = torch.tensor([0, 4, 1, 5, 2, 6, 3, 7])          # nibble slot of logical column j % 8
    shifts = 4 * order

    def unpack(packed: torch.Tensor) -> torch.Tensor:       # int32 [R, C/8] -> int64 [R, C]
        v = (packed.long()[:, :, None] >> shifts[None, None, :]) & 15
        return v.reshape(packed.shape[0], -1)

    new_sd, n = {}, 0
    for key, t in sd.items():
        if key.endswith(".qweight"):
            base = key[: -len(".qweight")]
            iw = unpack(t)                                       # [K, N]
            iz = unpack(sd[base + ".qzeros"])                    # [G, N]
            s = sd[base + ".scales"].float()                     # [G, N]
            g = iw.shape[0] // s.shape[0]
            w = (iw - iz.repeat_interleave(g, 0)).float() * s.repeat_interleave(g, 0)
            new_sd[base + ".weight"] = w.t().contiguous()
            n += 1
        elif key.endswith((".qzeros", ".scales")):
            continue
        else:
            new_sd[key] = t.float()
    missing, unexpected = float_model.load_state_dict(new_sd, strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]   # tied to embed_tokens
    if missing or unexpected:
        raise RuntimeError(f"hand dequantization: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return float_model, n


def cmd_eval(args) -> None:
    sys.path.insert(0, REPO)
    from awq_ext import data, load_quantized
    from awq_ext.eval import perplexity

    with open(os.path.join(args.out, REPORT)) as f:
        rep = json.load(f)["quantize"]
    float_model, tok = data.load_default_model(dtype=torch.float32)
    calib = data.calibration_samples(tok, N_SAMPLES, SEQLEN)
    eval_ids = data.eval_tokens(tok, EVAL_TOKENS)
    checks = {"float_weights_identical": float_fingerprint(float_model) == rep["float_fingerprint"],
              "calib_ids_identical": _sha(calib) == rep["calib_ids_sha256"],
              "eval_ids_identical": _sha(eval_ids) == rep["eval_ids_sha256"]}
    print("same inputs as the venv run:", checks, flush=True)

    t0 = time.perf_counter()
    try:
        model = load_quantized(args.out, device="cpu", dtype=torch.float32)
    except Exception as e:  # a loader failure on AutoAWQ's real output is a finding: report it whole
        print(f"awq_ext.load_quantized FAILED: {type(e).__name__}: {e}", flush=True)
        _update_report(args.out, "eval", {"checks": checks, "load_error": f"{type(e).__name__}: {e}"})
        raise
    t_load = time.perf_counter() - t0
    res = perplexity(model, eval_ids, window=WINDOW)
    print(f"awq_ext.load_quantized + awq_ext.eval: perplexity {res.perplexity:.4f} "
          f"({res.tokens + res.windows} tokens, {res.windows} windows of {WINDOW}; load {t_load:.1f} s, "
          f"eval {res.seconds:.1f} s)", flush=True)
    del model

    hand, n = _hand_dequantized(args.out, float_model)
    res_hand = perplexity(hand, eval_ids, window=WINDOW)
    print(f"cross-check (hand dequantization of the safetensors, no awq_ext.io): perplexity "
          f"{res_hand.perplexity:.4f} over {n} linears", flush=True)
    print(f"cross-check (AutoAWQ dequantize_gemm, venv): perplexity "
          f"{rep['crosscheck_dequantize_gemm_perplexity']:.4f}")
    import transformers
    _update_report(args.out, "eval", {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "checks": checks,
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "perplexity_awq_ext_loader": res.perplexity, "perplexity_hand_dequantized": res_hand.perplexity,
        "eval_tokens": res.tokens + res.windows, "windows": res.windows})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["quantize", "eval"], help="quantize: in the AutoAWQ venv; eval: main env")
    p.add_argument("--out", default="/tmp/aawq_smollm2_w4g64", help="AutoAWQ checkpoint folder")
    p.add_argument("--unpatched", action="store_true",
                   help="run AutoAWQ's CPU path as shipped (weights restored from aliased tensors; broken)")
    p.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_grad_enabled(False)
    {"quantize": cmd_quantize, "eval": cmd_eval}[args.command](args)


if __name__ == "__main__":
    main()
