"""Export a PyTorch model to a full-integer int8 .tflite with litert-torch's PT2E
quantizer, for compressgate to gate as a candidate. It runs in its own venv (torch and
litert-torch; the project's venv needs neither):

    python3.11 -m venv /path/to/torch-venv
    /path/to/torch-venv/bin/pip install litert-torch

and compressgate.toml names it as the command that writes the candidate:

    [models.mymodel.candidates.pt2e_int8]
    build = "/path/to/torch-venv/bin/python export_int8.py --data data.npz --out {out}"

``--float-out`` also writes the float .tflite, which can serve as the model's float
reference (``models.mymodel.model``). Replace ``model()`` with your own model.
"""

from __future__ import annotations

import argparse

import litert_torch
import numpy as np
import torch
from litert_torch.quantize import pt2e_quantizer
from litert_torch.quantize.quant_config import QuantConfig
from torch import nn
from torchao.quantization.pt2e import quantize_pt2e


def model() -> nn.Module:
    """The model to export, in eval mode (a tiny classifier here: load yours instead)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="the int8 .tflite to write")
    parser.add_argument("--data", help=".npz whose x_calib calibrates (default: noise)")
    parser.add_argument("--float-out", help="also write the float .tflite here")
    args = parser.parse_args()
    net = model()
    calib = (np.load(args.data)["x_calib"].astype(np.float32) if args.data
             else np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32))
    sample = (torch.from_numpy(calib[:1]),)
    if args.float_out:
        litert_torch.convert(net, sample).export(args.float_out)
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
    # Exported from the eval-mode module: litert-torch still warns "converted in
    # training mode" about the exported GraphModule's flag, which eval() cannot clear.
    prepared = quantize_pt2e.prepare_pt2e(torch.export.export(net, sample).module(),
                                          quantizer)
    with torch.no_grad():  # calibration: the observers record each tensor's range
        for row in calib:
            prepared(torch.from_numpy(row[None]))
    quantized = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    litert_torch.convert(quantized, sample,
                         quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(args.out)


if __name__ == "__main__":
    main()
