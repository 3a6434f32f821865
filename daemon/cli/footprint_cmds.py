"""``carbond gpus`` and ``carbond estimate``: the carbon model on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from daemon.catalog import gpu_catalog
from daemon.cli.context import (
    add_carbon_options,
    add_common_options,
    add_ledger_options,
    add_model_options,
    carbon_params_from,
    model_from,
    settings_from,
    zone_pue,
)
from daemon.cli.estimate_extras import Carbon, estimate_prompts, interval_payload
from daemon.cli.gpus_learned import learned_gpus
from daemon.cli.gpus_live import live_gpus
from daemon.cli.output import print_json, print_table
from daemon.cli.workload_flags import flags_named
from daemon.errors import UsageError
from daemon.reports.render import counted, fixed
from forecasts import MAX_INTENSITY_G_PER_KWH, static_annual_intensity
from policies.errors import InvalidWorkloadError
from policies.footprint import (
    DEFAULT_RUNTIMES,
    PRECISION_BYTES,
    Workload,
    estimate_interval,
    footprint,
    get_runtime,
)
from policies.footprint.served import served_precision

__all__ = ["register"]

# `estimate`'s mean token counts per request when none is given (not with --prompts)
_INPUT_TOKENS = 128
_OUTPUT_TOKENS = 150


def register(subparsers: Any) -> None:
    """Add ``gpus`` and ``estimate``."""
    gpus = subparsers.add_parser(
        "gpus",
        help="list the GPU catalog with embodied carbon",
        description="List the GPU catalog (architecture, year, memory, bandwidth, TDP and idle "
        "power in W, embodied kgCO2e and its method; --json adds die area, process node, "
        "memory type, FP16/FP32 TFLOPS, the ACT estimate and aliases), with [catalog] overrides "
        "from the config; --live: the GPUs the daemon runs on, per region (with no region on "
        "this node: this node's GPUs); --learned: the recalibration factors from the ledger.",
    )
    shown = gpus.add_mutually_exclusive_group()
    shown.add_argument(
        "--live",
        action="store_true",
        help="the daemon's GPUs per region (else this node's), read now (NVML or simulated)",
    )
    shown.add_argument("--learned", action="store_true",
                       help="the recalibration factors learned from measured runs, per (model, "
                            "GPU type) and per (model, GPU type, runtime, precision), as a "
                            "restart would fold them from the ledger")  # fmt: skip
    add_ledger_options(gpus)
    gpus.set_defaults(func=_gpus)

    est = subparsers.add_parser(
        "estimate",
        help="predict a job's time, energy and carbon on a GPU",
        description="Predict a job's duration (s), energy (J), mean power (W) and grams "
        "(operational + embodied gCO2e) on one GPU type at a zone's current intensity or a "
        "given one, per job, per request and per 1k output tokens, with a 10-90 % interval. A "
        'model that does not fit gives "fits": false and the reason.',
    )
    add_model_options(est)
    est.add_argument("--gpu", required=True, help="catalog GPU name or alias (see `carbond gpus`)")
    est.add_argument("--gpus", type=int, default=1, help="GPUs in tensor parallel (default 1)")
    est.add_argument("--batch-size", type=int, default=1, help="requests per batch (default 1)")
    est.add_argument("--input-tokens", type=int, default=None,
                     help=f"per request (mean, default {_INPUT_TOKENS})")  # fmt: skip
    est.add_argument("--output-tokens", type=int, default=None,
                     help=f"per request (mean, default {_OUTPUT_TOKENS})")  # fmt: skip
    est.add_argument("--requests", type=int, default=None, help="default: one full batch")
    est.add_argument("--runtime", default="hf-eager",
                     help=f"one of {', '.join(DEFAULT_RUNTIMES)} (default hf-eager)")  # fmt: skip
    est.add_argument("--precision", default="fp16",
                     help=f"one of {', '.join(PRECISION_BYTES)} (default fp16)")  # fmt: skip
    where = est.add_mutually_exclusive_group(required=True)
    where.add_argument("--zone", help="grid zone (e.g. CA-QC, US-CAL-CISO, US-NW-PACE)")
    where.add_argument(
        "--intensity", type=float, metavar="G_PER_KWH", help="grid intensity in gCO2e/kWh"
    )
    add_carbon_options(est)
    est.add_argument("--prompts", type=Path, default=None, metavar="FILE.jsonl",
                     help="per-prompt estimates: JSONL of {id, input_tokens, output_tokens}, "
                          "each served at --batch-size concurrency (not with --requests, "
                          "--input-tokens, --output-tokens)")  # fmt: skip
    est.add_argument("--out", type=Path, default=None, metavar="FILE.jsonl",
                     help="with --prompts: also write one JSON line per prompt here")  # fmt: skip
    add_common_options(est)
    est.set_defaults(func=_estimate)


def _gpus(args: argparse.Namespace) -> int:
    if args.live:
        return live_gpus(args)
    if args.learned:
        return learned_gpus(args)
    catalog = gpu_catalog(settings_from(args))
    rows = [
        {
            "name": g.name,
            "architecture": g.architecture,
            "year": g.year,
            "die_area_mm2": g.die_area_mm2,
            "process_node_nm": g.process_node_nm,
            "memory_gb": g.memory_gb,
            "memory_type": g.memory_type,
            "memory_bandwidth_gb_s": g.memory_bandwidth_gb_s,
            "fp16_tflops": g.fp16_tflops,
            "fp32_tflops": g.fp32_tflops,
            "int8_tops": g.int8_tops,
            "tdp_w": g.tdp_w,
            "idle_w": g.idle_w,
            "interconnect_gb_s": g.interconnect_gb_s,
            "embodied_kg": round(g.embodied_kg, 3),
            "embodied_method": g.embodied_method,
            "act_estimate_kg": round(g.act_embodied_kg(catalog.act), 3),
            "aliases": list(g.aliases),
        }
        for g in catalog
    ]
    if args.json:
        print_json(rows)
        return 0
    columns = ("name", "architecture", "year", "memory_gb", "memory_bandwidth_gb_s", "tdp_w",
               "idle_w", "embodied_kg", "embodied_method")  # fmt: skip
    print_table("GPU catalog", columns, [[row[c] for c in columns] for row in rows])
    return 0


def _intensity(args: argparse.Namespace) -> tuple[float, str]:
    if args.intensity is not None:
        if not 0 <= args.intensity <= MAX_INTENSITY_G_PER_KWH:  # NaN fails too
            raise UsageError(
                f"--intensity must be 0 to {MAX_INTENSITY_G_PER_KWH:,.0f} g/kWh, "
                f"got {args.intensity}"
            )
        return args.intensity, "given"
    return static_annual_intensity(args.zone), "static-annual"  # as `carbond intensity` says


_ESTIMATE_FLAGS = {
    "batch_size": "--batch-size",
    "input_tokens": "--input-tokens",
    "output_tokens": "--output-tokens",
    "requests": "--requests",
    "tensor_parallel": "--gpus",
    "precision": "--precision",
}


def _refuse_workload_options(args: argparse.Namespace) -> None:
    """With ``--prompts`` each line gives its own token counts and is priced as one request
    of a ``--batch-size`` batch: ``--requests`` and the mean token counts were accepted and
    silently ignored (the estimate did not move), so they are refused, naming them."""
    given = [
        option
        for option, value in (("--requests", args.requests),
                              ("--input-tokens", args.input_tokens),
                              ("--output-tokens", args.output_tokens))
        if value is not None
    ]  # fmt: skip
    if given:
        raise UsageError(
            f"{', '.join(given)} with --prompts: each prompt line gives its own token counts "
            "and is priced as one request of a --batch-size batch; drop "
            f"{'it' if len(given) == 1 else 'them'} (or --prompts for one aggregate estimate)"
        )


def _estimate(args: argparse.Namespace) -> int:
    if args.out is not None and args.prompts is None:
        raise UsageError("--out writes the per-prompt estimates: it needs --prompts FILE.jsonl")
    if args.prompts is not None:
        _refuse_workload_options(args)
    settings = settings_from(args)
    catalog = gpu_catalog(settings)
    gpu = catalog.get(args.gpu)
    model = model_from(args)
    runtime = get_runtime(args.runtime)
    input_tokens = _INPUT_TOKENS if args.input_tokens is None else args.input_tokens
    output_tokens = _OUTPUT_TOKENS if args.output_tokens is None else args.output_tokens
    with flags_named(_ESTIMATE_FLAGS):  # named as typed, not as the workload's fields
        served = served_precision(gpu, runtime, args.precision)  # as advise sweeps it
        workload = Workload(args.batch_size, input_tokens, output_tokens, args.requests,
                            served.precision, args.gpus)  # fmt: skip
        workload.validate()
    try:
        model.check_split(args.gpus)
    except InvalidWorkloadError as exc:
        raise UsageError(f"--gpus {args.gpus}: {exc}") from exc
    pue, lifetime = carbon_params_from(args, settings)
    intensity, source = _intensity(args)
    zone = None if args.zone is None else args.zone.strip().upper()  # as `carbond intensity`
    if args.pue is None and zone is not None:
        pue = zone_pue(settings, zone, pue, "--zone")
    carbon = Carbon(intensity, source, zone, pue, lifetime, gpu.embodied_g)
    if args.prompts is not None:
        return estimate_prompts(args, model, gpu, runtime, workload, carbon, served.note)
    band = estimate_interval(model, gpu, runtime, workload)
    est = band.estimate
    payload = _estimate_payload(est, intensity, source, zone, pue, lifetime, gpu.embodied_g)
    payload = _with_note(payload, served.note)
    payload.update(interval_payload(band, carbon))
    if args.json:
        print_json(payload)
    else:
        _print_estimate(payload)
    return 0


def _with_note(payload: dict[str, Any], note: str) -> dict[str, Any]:
    """``payload`` with ``precision_note`` (why the precision served is not the one asked,
    else None) after ``precision``."""
    out: dict[str, Any] = {}
    for key, value in payload.items():
        out[key] = value
        if key == "precision":
            out["precision_note"] = note or None
    return out


def _estimate_payload(
    est: Any,
    intensity: float,
    source: str,
    zone: str | None,
    pue: float,
    lifetime_years: float,
    gpu_embodied_g: float,
) -> dict[str, Any]:
    work: Workload = est.workload
    payload: dict[str, Any] = {
        "model": est.model,
        "gpu": est.gpu,
        "gpus": est.gpus,
        "runtime": est.runtime,
        "precision": work.precision,
        "batch_size": work.batch_size,
        "input_tokens": work.input_tokens,
        "output_tokens": work.output_tokens,
        "requests": work.request_count,
        "batch_in_flight": est.batch_in_flight,
        "fits": est.fits,
        "reason": est.reason or None,
        "memory_required_gb": round(est.memory_required_gb, 3),
        "memory_available_gb": round(est.memory_available_gb, 3),
        "zone": zone,
        "intensity_g_per_kwh": intensity,
        "intensity_source": source,
        "pue": pue,
        "lifetime_years": lifetime_years,
    }
    if not est.fits:
        for key in ("duration_s", "prefill_s", "decode_s", "energy_j", "prefill_energy_j",
                    "decode_energy_j", "mean_power_w", "operational_g", "embodied_g", "total_g",
                    "embodied_share"):  # fmt: skip
            payload[key] = None  # the keys of a fitting estimate, in its order
        payload["per_request"] = None
        payload["per_1k_output_tokens"] = None
        return payload
    grams = footprint(est.energy_j, est.duration_s, intensity, gpu_embodied_g, pue=pue,
                      lifetime_years=lifetime_years, gpus=est.gpus)  # fmt: skip
    per_request = grams.scaled(1.0 / work.request_count)
    per_1k = grams.scaled(1000.0 / est.output_tokens_total)
    payload.update(
        duration_s=est.duration_s,
        prefill_s=est.prefill_s,
        decode_s=est.decode_s,
        energy_j=est.energy_j,
        prefill_energy_j=est.prefill_energy_j,
        decode_energy_j=est.decode_energy_j,
        mean_power_w=est.mean_power_w,
        operational_g=grams.operational_g,
        embodied_g=grams.embodied_g,
        total_g=grams.total_g,
        embodied_share=grams.embodied_share,
        per_request={
            "latency_s": est.batch_latency_s,
            "energy_j": est.energy_per_request_j,
            "operational_g": per_request.operational_g,
            "embodied_g": per_request.embodied_g,
            "total_g": per_request.total_g,
        },
        per_1k_output_tokens={
            "energy_j": est.energy_j * 1000.0 / est.output_tokens_total,
            "total_g": per_1k.total_g,
        },
    )
    return payload


def _print_estimate(p: dict[str, Any]) -> None:
    batch = f"batch {p['batch_size']}"
    if p["fits"] and p["batch_in_flight"] < min(p["batch_size"], p["requests"]):
        batch += f" ({p['batch_in_flight']} in flight)"  # the engine queues the others
    title = (
        f"{p['model']} on {p['gpu']} x{p['gpus']} ({p['runtime']}, {p['precision']}), "
        f"{batch}, {counted(p['requests'], 'request')} of {p['input_tokens']} -> "
        f"{p['output_tokens']} tokens"
    )
    note = f"\nnote: {p['precision_note']}" if p["precision_note"] else ""
    if not p["fits"]:
        print(f"{title}\ndoes not fit: {p['reason']}{note}")
        return
    rows = [
        ("duration", f"{p['duration_s']:.3f} s"),
        ("energy", f"{p['energy_j']:.1f} J ({p['mean_power_w']:.0f} W mean)"),
        ("intensity", f"{fixed(p['intensity_g_per_kwh'], 6)} gCO2e/kWh ({p['intensity_source']}), "
                      f"PUE {p['pue']:g}"),
        ("operational", f"{fixed(p['operational_g'], 5)} g"),
        ("embodied", f"{fixed(p['embodied_g'], 5)} g ({p['embodied_share']:.1%} of total)"),
        ("total", f"{fixed(p['total_g'], 5)} g"),
        ("10-90 % interval", f"{p['energy_j_p10']:.1f}-{p['energy_j_p90']:.1f} J, "
                             f"{p['duration_s_p10']:.3f}-{p['duration_s_p90']:.3f} s, "
                             f"{fixed(p['total_g_p10'], 5)}-{fixed(p['total_g_p90'], 5)} g "
                             f"({p['calibration']} fit, {p['interval_basis']} residuals)"),
        ("per request", f"{p['per_request']['latency_s']:.3f} s latency, "
                        f"{p['per_request']['energy_j']:.2f} J, "
                        f"{fixed(p['per_request']['total_g'], 5)} g"),
        ("per 1k output tokens", f"{p['per_1k_output_tokens']['energy_j']:.1f} J, "
                                 f"{fixed(p['per_1k_output_tokens']['total_g'], 5)} g (SCI)"),
    ]  # fmt: skip
    print_table(title, ("quantity", "value"), rows)
    if note:
        print(note.lstrip("\n"))
