"""`lstmkit export`: a saved model as an ONNX graph with its vocabulary (needs the `lstmkit[export]` extra)."""

from __future__ import annotations

import click

from lstmkit.errors import LstmkitError


@click.command("export")
@click.argument("model_dir", type=click.Path())
@click.option(
    "--format", "export_format", type=click.Choice(["onnx"]), default="onnx", show_default=True, help="the graph format"
)
@click.option("--out", "out", type=click.Path(), required=True, help="the folder to write (new, empty, or an export)")
@click.option("--overwrite", is_flag=True, help="replace an export already in --out")
def export_command(model_dir, export_format, out, overwrite):
    """Write MODEL_DIR as model.onnx (token ids -> the probabilities `lstmkit predict` gives), with
    vocabulary.txt, vectorizer.json and export.json beside it; examples/onnx_predict.py uses them."""
    try:
        import onnx  # noqa: F401  (only to say what is missing before the model loads)
    except ImportError as e:
        raise LstmkitError(f"lstmkit export needs onnx ({e}); install it with: pip install 'lstmkit[export]'") from None
    from lstmkit.tasks.export import export_onnx

    folder = export_onnx(model_dir, out, overwrite=overwrite)
    click.echo(f"wrote {folder} ({export_format}): model.onnx, vocabulary.txt, vectorizer.json, export.json")
