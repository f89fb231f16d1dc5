"""``tokenomy quantize``: the command line over :mod:`tokenomy.quantize.run`."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("quantize")
@click.argument("model")
@click.option(
    "--types",
    default=None,
    help="GGUF: f16,q8_0,q6_k,q5_k_m,q4_k_m,q4_0 (default); ONNX encoder: int8,int8-per-channel,uint8 (default).",
)
@click.option(
    "--eval",
    "eval_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help='JSONL of {"prompt", "expected"} lines; default: a built-in known-answer set.',
)
@click.option("--scorer", type=click.Choice(["contains", "exact"]), default="contains", show_default=True)
@click.option(
    "--min-quality",
    type=click.FloatRange(0, 1),
    default=None,
    help="Default: the quality of the highest-precision type asked for.",
)
@click.option(
    "--prefer",
    type=click.Choice(["speed", "size"]),
    default="speed",
    show_default=True,
    help="Among variants meeting --min-quality, recommend the fastest or the smallest.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("quantized"), show_default=True)
@click.option("--max-tokens", type=click.IntRange(1), default=24, show_default=True, help="Answer length cap.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def quantize_command(
    model: str,
    types: str | None,
    eval_path: Path | None,
    scorer: str,
    min_quality: float | None,
    prefer: str,
    out: Path,
    max_tokens: int,
    threads: int,
    fmt: str,
) -> None:
    """Make smaller variants of MODEL and measure each.

    MODEL is a .gguf file or the embedded generator's name (llama.cpp types), or an ONNX sentence
    encoder: an .onnx file or paraphrase-minilm-l3-v2 (int8 types, checked by cosine to full precision).
    """
    from tokenomy.quantize import evalset, onnx_encoder, run
    from tokenomy.quantize.gguf import QuantizeError

    try:
        encoder = onnx_encoder.resolve_encoder(model)
        if encoder is not None:
            sentences = [i.prompt for i in evalset.load(eval_path)] if eval_path else list(onnx_encoder.SENTENCES)
            rows = onnx_encoder.quantize_encoder(
                encoder, onnx_encoder.parse_onnx_types(types or ",".join(onnx_encoder.ONNX_TYPES)), out, sentences
            )
            text = (
                onnx_encoder.render_encoder_json(rows)
                if fmt == "json"
                else onnx_encoder.render_encoder_table(rows, len(sentences))
            )
            click.echo(text)
            return
        source = run.resolve_source(model)
        names = run.parse_types(types or "f16,q8_0,q6_k,q5_k_m,q4_k_m,q4_0")
        items = evalset.load(eval_path)
        reports = run.quantize(source, names, out, items, scorer, threads=threads, max_tokens=max_tokens)
    except (QuantizeError, evalset.EvalSetError) as exc:
        raise click.ClickException(str(exc)) from None
    chosen = run.recommend(reports, reports[0].quality if min_quality is None else min_quality, prefer)
    click.echo(run.render_json(reports, chosen) if fmt == "json" else run.render_table(reports, chosen, len(items)))
