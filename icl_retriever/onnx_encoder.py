"""An encoder's forward pass run by ONNX Runtime: the vectors torch gives, with less cost per call.

`TransformerEmbedder` uses it when the encoder runtime is `onnx` (`models.encoder_runtime`,
`ICL_RETRIEVER_ENCODER=onnx`). The model is exported once with torch's exporter (eager attention,
batch and sequence length left free) into `cache_dir()/onnx/<weights id>/model.onnx`, written to a
temporary file and renamed, so a process killed mid-export or two exporting at once leave no broken
file. ONNX Runtime runs it on the CPU with as many threads as torch uses. The hidden states equal
torch's to float rounding, so the vector space (and the embedder's fingerprint) is the same and a
store built with either runtime is read by the other. What it saves is per-call overhead: one short
request's encoding costs about half of torch's on one core; index batches cost about the same
(README, "Encoder runtime").

Example:
    >>> encoder = OnnxEncoder(lambda: model, cache_dir() / "onnx" / "abc", ["input_ids", "attention_mask"])  # doctest: +SKIP
    >>> hidden = encoder(tokenizer(["Classify the sentiment."], return_tensors="pt"))                  # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: ONNX operator set of the export (supported by the ONNX Runtime that chromadb installs).
OPSET = 17
MODEL_FILE = "model.onnx"


class OnnxEncoder:
    """`model`'s last hidden state, computed by ONNX Runtime from the exported graph in `folder`.

    Args:
        load_model: returns the transformers encoder; called only when `folder` holds no export yet
            (an embedder on this runtime never loads the torch weights once they are exported).
        folder: where the export lives; one folder per set of weights.
        input_names: the tokenizer outputs the model takes, in the order its forward() names them.
    """

    def __init__(self, load_model: Callable[[], Any], folder: Path, input_names: Sequence[str]) -> None:
        import onnxruntime
        import torch

        self.input_names = list(input_names)
        path = Path(folder) / MODEL_FILE
        if not path.is_file():
            export(load_model(), path, self.input_names)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._torch = torch

    def __call__(self, batch: Mapping[str, Any]) -> Any:
        """Last hidden state (batch, tokens, hidden) as a torch tensor on the batch's device, for a
        tokenizer's torch batch."""
        feeds = {name: batch[name].cpu().numpy().astype(np.int64) for name in self.input_names}
        (hidden,) = self._session.run(["last_hidden_state"], feeds)
        return self._torch.from_numpy(hidden).to(batch[self.input_names[0]].device)


def export(model: Any, path: Path, input_names: Sequence[str]) -> Path:
    """Write `model`'s forward pass (inputs `input_names`, output `last_hidden_state`) to `path`.

    Attention is switched to the eager implementation first: the fused one is traced with the
    example's sequence length baked into its masking, which gives wrong vectors at other lengths.
    """
    import torch

    model.set_attn_implementation("eager")
    model.eval()

    class _LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(input_names, inputs))).last_hidden_state

    example = tuple(torch.ones((2, 8), dtype=torch.long) for _ in input_names)
    axes = {name: {0: "batch", 1: "tokens"} for name in [*input_names, "last_hidden_state"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(handle)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(
                _LastHidden(),
                example,
                temporary,
                input_names=list(input_names),
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the cache is shared like the others
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path
