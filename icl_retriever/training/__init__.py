"""PIE training: verb-noun task labels for unlabeled instructions, pairs with hard negatives, a
label-masked contrastive loss, and the `icl-retriever train` run (sentence-transformers trainer +
a peft LoRA adapter)."""
