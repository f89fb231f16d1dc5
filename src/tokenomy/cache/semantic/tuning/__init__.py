"""Fine-tuning the semantic tier's cross-encoder on a team's own labelled questions (offline).

``tokenomy cache tune`` (:mod:`~tokenomy.cache.semantic.tuning.tune`) continues the shipped
cross-encoder's training on labelled pairs, or on pairs made from intent-labelled questions
(:mod:`~tokenomy.cache.semantic.tuning.intents`), measures it by grouped cross-validation and writes
a model and a verifier file that ``cache.semantic.model_path`` / ``verifier_path`` load. Needs the
``distill`` extra (PyTorch, transformers); serving a tuned model does not.
"""
