"""Training, evaluation and forgetting-aware fine-tuning of CGAA models.

Public entry points: :func:`cgaa.train.trainer.train`, :func:`cgaa.train.evaluate.evaluate`,
:func:`cgaa.train.finetune.finetune`, :func:`cgaa.train.config.load_config`.
"""
