"""Fine-tuning application (installed as ``molchannel.finetune``).

``finetune(model, table, split, config)`` fine-tunes a model on a labelled table held in memory with
prompt selection (METHOD.md section 6) and returns the result with the fine-tuned model;
``run_finetune(config, output_dir)`` reads the dataset its config names and writes a run folder with an
exported model that ``molchannel.load(...).predict(...)`` reads. ``molchannel finetune`` is its
command line.
Lightning is imported only with :mod:`molchannel.finetune.run` (configs and ROGI do not need it).
"""

from __future__ import annotations

from typing import Any

from molchannel.finetune.config import (
    DataConfig,
    FinetuneConfig,
    ModelConfig,
    OptimConfig,
    PromptConfig,
    TrainerConfig,
    as_config,
    load_config,
)

__all__ = [
    "DataConfig",
    "FinetuneConfig",
    "FinetuneResult",
    "ModelConfig",
    "OptimConfig",
    "PromptConfig",
    "TrainerConfig",
    "as_config",
    "finetune",
    "load_config",
    "run_finetune",
]


def __getattr__(name: str) -> Any:
    if name in ("finetune", "run_finetune", "FinetuneResult"):
        from molchannel.finetune import run

        return getattr(run, name)
    raise AttributeError(f"module 'molchannel.finetune' has no attribute {name!r}")
