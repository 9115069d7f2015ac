"""Label-masked in-batch contrastive loss (InfoNCE with temperature ~0.05).

Like sentence-transformers' `MultipleNegativesRankingLoss` on (anchor, positive, negative)
triplets, except that a candidate with the anchor's own task label is never used as a negative:
two "write|poem" instructions in one batch are not pushed apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss


class LabelMaskedContrastiveLoss(MultipleNegativesRankingLoss):
    """In-batch contrastive loss that masks same-label candidates.

    Inputs: sentence features for (anchor, positive, negative) columns and `labels` of shape
    (batch, 2) holding integer ids of the anchor/positive label and of the negative's label.
    Candidates for anchor i are all positives and negatives in the batch; the target is positive i;
    every other candidate whose label equals anchor i's label is removed from the softmax.
    With `symmetric`, positives also retrieve their anchors among all anchors (same masking).
    """

    def __init__(self, model: SentenceTransformer, temperature: float = 0.05, symmetric: bool = True) -> None:
        super().__init__(model, scale=1.0 / temperature)
        self.symmetric = symmetric

    def forward(self, sentence_features: Iterable[dict[str, torch.Tensor]], labels: torch.Tensor) -> torch.Tensor:
        embeddings = [self.model(features)["sentence_embedding"] for features in sentence_features]
        return self.compute_loss_from_embeddings(embeddings, labels)

    def compute_loss_from_embeddings(self, embeddings: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        anchors = torch.nn.functional.normalize(embeddings[0], dim=-1)
        candidates = torch.nn.functional.normalize(torch.cat(embeddings[1:]), dim=-1)
        labels = labels.view(anchors.shape[0], -1).long()
        anchor_labels = labels[:, 0]
        n = anchors.shape[0]
        # Label of each candidate: positives carry the anchor label, negatives their own.
        candidate_labels = torch.cat([anchor_labels] + [labels[:, 1]] * (len(embeddings) - 2))
        target = torch.arange(n, device=anchors.device)
        loss = self._masked_nce(anchors @ candidates.T, anchor_labels, candidate_labels, target)
        if self.symmetric:
            loss = (loss + self._masked_nce(candidates[:n] @ anchors.T, anchor_labels, anchor_labels, target)) / 2
        return loss

    def _masked_nce(
        self, scores: torch.Tensor, row_labels: torch.Tensor, column_labels: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        same = row_labels[:, None] == column_labels[None, :]
        same[target, target] = False  # the true pair stays
        scores = (scores * self.scale).masked_fill(same, float("-inf"))
        return torch.nn.functional.cross_entropy(scores, target)

    def get_config_dict(self) -> dict[str, Any]:
        return {"temperature": 1.0 / self.scale, "symmetric": self.symmetric}
