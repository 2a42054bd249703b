"""Build awq_ext's native extension with torch.utils.cpp_extension (ninja).

CUDA or CPU-only is decided by the toolchain, never by whether a GPU is present:
  - torch is a CUDA build and nvcc is found (CUDA_HOME)  -> CUDA extension (every kernel compiled)
  - torch is a CPU build, or AWQ_EXT_CPU_ONLY=1           -> CPU-only extension
  - torch is a CUDA build but nvcc is missing             -> the build fails and says how to proceed
Environment: TORCH_CUDA_ARCH_LIST (default "8.0+PTX;9.0a": sm_80 and sm_90a machine code plus
compute_80 PTX for newer GPUs), MAX_JOBS (parallel compile jobs), AWQ_EXT_CPU_ONLY=1.
The extension links against the torch you build with: install with --no-build-isolation.
"""
import glob
import os
import sys

from setuptools import find_packages, setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError:  # pragma: no cover - exercised only by a misconfigured build
    sys.exit("awq_ext: building needs PyTorch in the build environment. Install torch first, then run "
             "`pip install --no-build-isolation .` (or `pip install --no-build-isolation -e .`).")

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCHS = "8.0+PTX;9.0a"


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _want_cuda() -> bool:
    if _truthy("AWQ_EXT_CPU_ONLY"):
        print("awq_ext: AWQ_EXT_CPU_ONLY set: building the CPU-only extension")
        return False
    if torch.version.cuda is None:
        print(f"awq_ext: torch {torch.__version__} is a CPU build: building the CPU-only extension")
        return False
    nvcc = os.path.join(CUDA_HOME, "bin", "nvcc") if CUDA_HOME else None
    if nvcc is None or not os.path.exists(nvcc):
        sys.exit(f"awq_ext: torch {torch.__version__} is a CUDA {torch.version.cuda} build but nvcc was not "
                 f"found (CUDA_HOME={CUDA_HOME!r}). Set CUDA_HOME to a CUDA toolkit matching "
                 f"{torch.version.cuda}, or set AWQ_EXT_CPU_ONLY=1 to build without CUDA kernels.")
    return True


def _sources(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))


def _cuda_include_dirs() -> list[str]:
    """cuBLAS and friends ship in the nvidia-* wheels next to torch, not always in CUDA_HOME."""
    dirs = []
    for site in sys.path:
        cand = os.path.join(site, "nvidia", "cu13", "include")
        if os.path.isdir(cand):
            dirs.append(cand)
    return dirs[:1]


def build_extension():
    with_cuda = _want_cuda()
    sources = _sources("csrc/torch/ops.cpp") + _sources("csrc/torch/checks.cpp") + \
        _sources("csrc/torch/cpu_ops.cpp") + _sources("csrc/kernels/cpu/*.cpp")
    include_dirs = [os.path.join(ROOT, "csrc", "include"), os.path.join(ROOT, "csrc", "kernels", "cuda")]
    cxx = ["-O3", "-fopenmp", "-fno-fast-math", "-ffp-contract=off", "-Wall", "-Wno-unknown-pragmas"]
    define_macros = []
    if not with_cuda:
        return CppExtension("awq_ext._C", sources, include_dirs=include_dirs,
                            extra_compile_args={"cxx": cxx}, extra_link_args=["-fopenmp"],
                            define_macros=define_macros)
    archs = os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_ARCHS)
    print(f"awq_ext: building CUDA kernels for TORCH_CUDA_ARCH_LIST={archs} with nvcc from {CUDA_HOME}")
    sources += _sources("csrc/torch/cuda_ops.cpp") + _sources("csrc/kernels/cuda/*.cu")
    include_dirs += _cuda_include_dirs()
    define_macros += [("AWQ_WITH_CUDA", None), ("AWQ_CUDA_ARCHS", f'"{archs}"'),
                      ("AWQ_CUDA_VERSION", f'"{torch.version.cuda}"')]
    nvcc = ["-O3", "--expt-relaxed-constexpr", "-lineinfo",
            # torch disables the fp16/bf16 operator overloads by default; the kernels use them
            "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
            "-U__CUDA_NO_HALF2_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
            "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-DAWQ_WITH_CUDA"]
    return CUDAExtension("awq_ext._C", sources, include_dirs=include_dirs,
                         extra_compile_args={"cxx": cxx + ["-DAWQ_WITH_CUDA"], "nvcc": nvcc},
                         extra_link_args=["-fopenmp"], define_macros=define_macros)


setup(
    name="awq_ext",
    packages=find_packages(include=["awq_ext", "awq_ext.*"]),
    ext_modules=[build_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
