"""What the machine computes natively, shared by training
(`common.train.distribute.set_precision`) and inference (`inference.resolve_precision`)."""


def cpu_bfloat16_support(cpuinfo: str | None = None) -> bool | None:
    """Whether this CPU computes bfloat16 natively, from /proc/cpuinfo's flags (or `cpuinfo`).

    True with x86's `amx_bf16` or `avx512_bf16`, or Arm's `bf16`; False when the flags are read
    and have none of them; None where there is no /proc/cpuinfo (not Linux). Without them
    TensorFlow emulates bfloat16, several times slower than float32 (CHANGELOG.md, 2026-12-07:
    the SRN `small` step on a 2-core AVX2 EPYC).
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return None
    words = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            words.update(value.split())
    if not words:
        return None
    return bool(words & {"amx_bf16", "avx512_bf16", "bf16"})
