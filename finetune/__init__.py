"""Fine-tuning application (installed as ``molchannel.finetune``).

``run_finetune(config, output_dir)`` fine-tunes a model folder on one labelled dataset with
prompt selection (METHOD.md section 6) and writes a run folder with an exported model that
``molchannel.load(...).predict(...)`` reads. ``molchannel finetune`` is its command line.
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
    "load_config",
    "run_finetune",
]


def __getattr__(name: str) -> Any:
    if name in ("run_finetune", "FinetuneResult"):
        from molchannel.finetune import run

        return getattr(run, name)
    raise AttributeError(f"module 'molchannel.finetune' has no attribute {name!r}")
