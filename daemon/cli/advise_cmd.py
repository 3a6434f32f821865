"""``carbond advise``: the lowest-carbon way to serve a model, and what each choice is worth.

    carbond advise --model llama-3.1-70b --gpus H100-SXM,A100-40GB,B200 \\
        --zones CA-QC,US-CAL-CISO,US-NW-PACE --max-latency-s 20 [--json]

The sweep itself is pure (:func:`policies.footprint.advice.advise`); this module parses the
arguments, looks up zone intensities (static annual averages, or ``ZONE=G_PER_KWH``) and prints.
"""

from __future__ import annotations

import argparse
from typing import Any

from daemon.catalog import gpu_catalog
from daemon.cli.context import (
    add_carbon_options,
    add_common_options,
    add_model_options,
    carbon_params_from,
    model_from,
    settings_from,
    zone_pue,
)
from daemon.cli.output import print_json, print_table
from daemon.cli.workload_flags import flags_named
from daemon.errors import UsageError
from daemon.reports.render import counted
from forecasts import MAX_INTENSITY_G_PER_KWH, static_annual_intensity
from policies.footprint import DEFAULT_RUNTIMES, get_runtime
from policies.footprint.advice import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_PRECISIONS,
    Advice,
    Candidate,
    advise,
)

__all__ = ["register"]

_PAPER_ZONES = "CA-QC,US-CAL-CISO,US-NW-PACE"
_FLAGS = {  # advise()'s arguments and its workloads' fields, named as typed
    "max_latency_s": "--max-latency-s",
    "input_tokens": "--input-tokens",
    "output_tokens": "--output-tokens",
    "batch_size": "--batch-sizes",
    "precision": "--precisions",
}


def register(subparsers: Any) -> None:
    """Add ``advise``."""
    p = subparsers.add_parser(
        "advise",
        help="recommend the lowest-carbon GPU, precision, batch and zone within a latency bound",
        description="Sweep batch size, weight precision, GPU type and zone for one model, keep "
        "the configurations within --max-latency-s, and print the one of lowest gCO2e per 1k "
        "output tokens (operational + embodied), its runners-up and what each factor saves.",
    )
    add_model_options(p)
    p.add_argument("--gpus", default=None, help="comma-separated GPU types (default: catalog)")
    p.add_argument("--zones", default=_PAPER_ZONES,
                   help=f"zones or ZONE=G_PER_KWH (default {_PAPER_ZONES})")  # fmt: skip
    p.add_argument("--max-latency-s", type=float, default=None,
                   help="per-request latency bound in seconds (all output tokens; default: "
                        "none)")  # fmt: skip
    p.add_argument("--input-tokens", type=int, default=250, help="per request (mean, default 250)")
    p.add_argument("--output-tokens", type=int, default=250, help="per request (mean, default 250)")
    p.add_argument("--batch-sizes", default=",".join(map(str, DEFAULT_BATCH_SIZES)),
                   help="comma-separated requests in flight to try (default "
                   f"{','.join(map(str, DEFAULT_BATCH_SIZES))})")  # fmt: skip
    p.add_argument("--precisions", default=",".join(DEFAULT_PRECISIONS),
                   help="weight precisions to try, of fp32, fp16, bf16, fp8, int8, int4 "
                   f"(default {','.join(DEFAULT_PRECISIONS)})")  # fmt: skip
    p.add_argument(
        "--runtime", default="vllm", help=f"one of {', '.join(DEFAULT_RUNTIMES)} (default vllm)"
    )
    add_carbon_options(p)
    p.add_argument(
        "--runners-up", type=int, default=5, help="how many alternatives to show (default 5)"
    )
    add_common_options(p)
    p.set_defaults(func=_advise)


def _split(text: str, option: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise UsageError(f"{option} needs at least one value")
    return items


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(item) for item in _split(text, option)]
    except ValueError as e:
        raise UsageError(f"{option} takes comma-separated integers, got {text!r}") from e
    return values


def _zones(text: str) -> dict[str, float]:
    """``--zones``: each item a zone of the static table (named in upper case, as Electricity
    Maps keys are) or ``ZONE=G_PER_KWH`` (named as given).

    Raises:
        UsageError: an item without a name, an intensity that is not 0 to
            ``MAX_INTENSITY_G_PER_KWH``,
            or a zone given twice (its second intensity would replace the first unseen).
        UnknownZoneError: a bare zone the static table does not know.
    """
    zones: dict[str, float] = {}
    for item in _split(text, "--zones"):
        name, sep, value = (part.strip() for part in item.partition("="))
        if not name:
            raise UsageError(f"--zones: {item!r} names no zone")
        if name.lower() in {zone.lower() for zone in zones}:
            raise UsageError(f"--zones: {name} is given twice")
        if not sep:
            zones[name.upper()] = static_annual_intensity(name)  # as `carbond intensity`
            continue
        try:
            intensity = float(value)
        except ValueError as e:
            raise UsageError(f"--zones: {item!r} is not ZONE=G_PER_KWH") from e
        if not 0 <= intensity <= MAX_INTENSITY_G_PER_KWH:  # NaN fails too
            raise UsageError(
                f"--zones: intensity of {name} must be 0 to "
                f"{MAX_INTENSITY_G_PER_KWH:,.0f} g/kWh, got {value}"
            )
        zones[name] = intensity
    return zones


def _row(c: Candidate) -> dict[str, Any]:
    return {
        "gpu": c.gpu,
        "gpus": c.gpus,
        "precision": c.precision,
        "batch_size": c.batch_size,
        "zone": c.zone,
        "intensity_g_per_kwh": c.intensity_g_per_kwh,
        "latency_s": c.latency_s,
        "energy_per_1k_tokens_j": c.energy_per_1k_tokens_j,
        "operational_per_1k_tokens_g": c.operational_per_1k_tokens_g,
        "embodied_per_1k_tokens_g": c.embodied_per_1k_tokens_g,
        "total_per_1k_tokens_g": c.total_per_1k_tokens_g,
        "total_per_1k_tokens_g_p10": c.total_per_1k_tokens_g_p10,
        "total_per_1k_tokens_g_p90": c.total_per_1k_tokens_g_p90,
    }


def _payload(
    advice: Advice, model: str, runtime: str, max_latency_s: float | None
) -> dict[str, Any]:
    return {
        "model": model,
        "runtime": runtime,
        "max_latency_s": max_latency_s,
        "recommendation": None if advice.best is None else _row(advice.best),
        "reason": advice.reason,
        "runners_up": [_row(c) for c in advice.runners_up],
        "factors": [
            {
                "factor": f.factor,
                "chosen": f.chosen,
                "alternative": f.alternative,
                "alternative_per_1k_tokens_g": f.alternative_per_1k_tokens_g,
                "saving_per_1k_tokens_g": f.saving_per_1k_tokens_g,
                "saving_pct": f.saving_pct,
            }
            for f in advice.factors
        ],
        "candidates": advice.candidates,
        "rejected_latency": advice.rejected_latency,
        "rejected_memory": advice.rejected_memory,
        "unserved": list(advice.unserved),
        "intensity_source": "static-annual or given",
    }


def _advise(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    catalog = gpu_catalog(settings)
    model = model_from(args)
    gpus = (
        list(catalog)
        if args.gpus is None
        else [catalog.get(name) for name in _split(args.gpus, "--gpus")]
    )
    pue, lifetime = carbon_params_from(args, settings)
    if args.runners_up < 0:
        raise UsageError(f"--runners-up must be >= 0, got {args.runners_up}")
    runtime = get_runtime(args.runtime)
    if not runtime.continuous_batching:
        raise UsageError(f"--runtime {runtime.name} is not a serving engine; use vllm")
    zones = _zones(args.zones)
    batch_sizes = _ints(args.batch_sizes, "--batch-sizes")
    precisions = _split(args.precisions, "--precisions")
    # as `estimate --zone`: a zone of configured regions takes their PUE unless --pue is given
    pues = {z: pue if args.pue is not None else zone_pue(settings, z.upper(), pue, "--zones")
            for z in zones}  # fmt: skip
    with flags_named(_FLAGS):
        advice = advise(
            model, gpus, zones, runtime,
            input_tokens=args.input_tokens, output_tokens=args.output_tokens,
            batch_sizes=batch_sizes, precisions=precisions,
            max_latency_s=args.max_latency_s, pue=pues, lifetime_years=lifetime,
            runners_up=args.runners_up,
        )  # fmt: skip
    payload = _payload(advice, model.name, runtime.name, args.max_latency_s)
    payload["pue"] = pues
    if args.json:
        print_json(payload)
    else:
        _print(payload)
    return 0 if advice.best is not None else 1


def _print(p: dict[str, Any]) -> None:
    print(f"{p['model']} ({p['runtime']}): {p['reason']}")
    columns = ("gpu", "gpus", "precision", "batch_size", "zone", "latency_s",
               "energy_per_1k_tokens_j", "total_per_1k_tokens_g",
               "total_per_1k_tokens_g_p90")  # fmt: skip
    rows = [p["recommendation"], *p["runners_up"]] if p["recommendation"] else []
    if rows:
        print_table("best and runners-up (grams per 1k output tokens)", columns,
                    [[row[c] for c in columns] for row in rows])  # fmt: skip
    if p["factors"]:
        print_table(
            "what each choice saves (one factor at a time)",
            ("factor", "chosen", "instead of", "g per 1k saved", "saving"),
            [[f["factor"], f["chosen"], f["alternative"], f["saving_per_1k_tokens_g"],
              f"{f['saving_pct']:.0f}%"] for f in p["factors"]],
        )  # fmt: skip
    print(f"{counted(p['candidates'], 'configuration')} scored, {p['rejected_latency']} over "
          f"the latency bound, {p['rejected_memory']} out of memory")  # fmt: skip
    if p["unserved"]:
        print(f"not swept (vLLM cannot serve them there): {', '.join(p['unserved'])}")
