"""The parts of the training loop, one job each; :class:`i2i.trainer.Trainer` puts them together.

* :mod:`~i2i.training.loop_context`: how a task's updates run (AMP scaling, DDP, optimizers);
* :mod:`~i2i.training.hooks`: the loop's hooks (schedules, EMA, progress, losses, checkpoints,
  sample grids, validation);
* :mod:`~i2i.training.schedule`, :mod:`~i2i.training.ema`, :mod:`~i2i.training.distributed`,
  :mod:`~i2i.training.checkpointing`, :mod:`~i2i.training.run_log`, :mod:`~i2i.training.samples`,
  :mod:`~i2i.training.validation`, :mod:`~i2i.training.data`, :mod:`~i2i.training.signals`:
  the jobs themselves;
* :mod:`~i2i.training.preflight`: the checks made before anything is built.

Tasks never import this package: they see the loop only through
:class:`i2i.tasks.context.TrainingContext`.
"""
