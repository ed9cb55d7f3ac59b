"""Training code every paper trainer shares (a paper's `train.py` keeps only its networks, losses
and `replica_step`). One job per module, imported in this order (none imports a later one):

    errors.py       CheckpointError, NonFiniteLossError, TrainingInterrupted (no TensorFlow)
    flags.py        the common training flags, their checks, the --lr_schedule factor
    workdirs.py     which paper and stage trained a workdir (flags.txt), in words
    distribute.py   strategy, chief, per-worker datasets and seeds, precision, optimizer, step
    checkpoints.py  Checkpointer (resume, best), checkpoint paths, restore for eval / init flags
    summaries.py    TensorBoard writers
    loop.py         run_train_loop: logging, signals, profiler, data wait, non-finite guard
    trainer.py      Trainer, start_run, train

The command-line helpers (flagfiles, `run_app`, `save_flags`/`load_flags`) are `common.cli`,
which imports none of these, so a deblur or export CLI does not load the training code.
"""
