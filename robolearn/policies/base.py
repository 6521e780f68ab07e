"""``PolicyModule``: the LightningModule every robolearn policy derives from.

It owns what all imitation policies share: the features, a :class:`Normalizer` whose statistics are buffers
(saved in Lightning checkpoints and in ``model.safetensors``), the training/validation steps, optimizer and
scheduler construction (the policy's own, or a Hydra ``_partial_`` replacement), and the action queue used by
``select_action``.

A subclass implements ``compute_loss``, ``_predict_chunk`` and ``delta_indices`` and may override
``get_optim_params``, ``default_optimizer``, ``default_lr_scheduler``, ``_prepare_observation`` and ``reset``.

Optimizer convention (every policy; docs/architecture.md, "Optimizer and scheduler"): the optimizer and scheduler
hyper-parameters are constructor arguments with the paper's / lerobot's defaults and lerobot's names
(``optimizer_lr``, ``optimizer_betas``, ``scheduler_warmup_steps``, ...; SAC: ``actor_lr``, ``critic_lr``,
``temperature_lr``), so each is written once and is a config key ``policy.<name>``. ``default_optimizer`` /
``default_lr_scheduler`` read them; a subclass lists the ones they read in :attr:`PolicyModule.optimizer_hparams` /
:attr:`PolicyModule.lr_scheduler_hparams`. Arguments that ``get_optim_params`` puts into parameter groups (e.g.
ACT's ``optimizer_lr_backbone``) apply with any optimizer. The ``optimizer`` / ``lr_scheduler`` arguments replace
``default_optimizer`` / ``default_lr_scheduler`` as a whole; giving one together with a non-default value of an
argument it replaces raises ``ValueError`` (:meth:`PolicyModule.check_optimizer_arguments`).
"""

from __future__ import annotations

import collections
import inspect
from typing import Any, Callable, Mapping

import lightning as L
import torch
from torch import Tensor

from robolearn.features import ACTION, FeatureType, NormalizationMode, PolicyFeature
from robolearn.policies.normalize import Normalizer, coerce_norm_map

OptimizerFactory = Callable[..., torch.optim.Optimizer]


def coerce_features(features: Mapping[str, Any]) -> dict[str, PolicyFeature]:
    """Accept ``PolicyFeature`` values or ``{type, shape}`` mappings (what Hydra's instantiate passes)."""
    out: dict[str, PolicyFeature] = {}
    for key, value in features.items():
        if isinstance(value, PolicyFeature):
            out[str(key)] = value
        elif isinstance(value, Mapping) or hasattr(value, "keys"):
            t = value["type"]
            out[str(key)] = PolicyFeature(FeatureType(getattr(t, "value", t)), tuple(int(s) for s in value["shape"]))
        else:
            raise TypeError(f"feature '{key}' must be a PolicyFeature or a {{type, shape}} mapping, got {type(value)}")
    return out


def to_primitive(value: Any) -> Any:
    """Convert OmegaConf containers, tuples and enums to plain dict/list/str so checkpoints load with
    ``torch.load(weights_only=True)``."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, Mapping):
        return {str(getattr(k, "value", k)): to_primitive(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_primitive(v) for v in value]
    if isinstance(value, (FeatureType, NormalizationMode)):
        return value.value
    return value


def _wants_arg(factory: Callable, name: str) -> bool:
    """True if ``factory`` has a parameter ``name`` that a partial has not bound (so we should fill it)."""
    import functools

    if isinstance(factory, functools.partial) and name in (factory.keywords or {}):
        return False
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return False
    return name in sig.parameters


def _bound_keywords(factory: Callable) -> dict[str, Any]:
    """The keyword arguments a ``functools.partial`` (what Hydra's ``_partial_: true`` builds) binds, else ``{}``."""
    import functools

    return dict(factory.keywords or {}) if isinstance(factory, functools.partial) else {}


def _factory_name(factory: Callable) -> str:
    """``<module>.<qualified name>`` of the callable (of ``func`` for a partial), e.g. ``torch.optim.sgd.SGD``."""
    import functools

    func = factory.func if isinstance(factory, functools.partial) else factory
    module = getattr(func, "__module__", None)
    name = getattr(func, "__qualname__", None) or repr(func)
    return f"{module}.{name}" if module else name


def fused_on_cpu(params: Any) -> dict[str, bool]:
    """Extra optimizer keyword arguments that select torch's fused Adam/AdamW kernel when every parameter is on the CPU.

    Without them torch runs Adam on CPU tensors one parameter at a time (its ``foreach`` default covers accelerators
    only); the fused kernel does one pass per tensor (Adam on 126 M parameters, one thread of a busy 2-core CPU:
    2.3 s -> 0.25 s per step) with the same update up to float rounding (about 1 ulp). On other devices nothing is
    added, so the
    optimizer keeps torch's default there (a fused CUDA optimizer would refuse Lightning's gradient clipping under
    ``16-mixed``).

    Args:
        params: parameters, or parameter groups (mappings with ``"params"``), as handed to the optimizer.
    Returns:
        ``{"fused": True}`` or ``{}`` (also for no parameters).
    """
    tensors: list[Tensor] = []
    for item in params:
        if isinstance(item, Mapping):
            tensors.extend(item["params"])
        else:
            tensors.append(item)
    if tensors and all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) for t in tensors):
        return {"fused": True}
    return {}


class NonFiniteLossError(FloatingPointError):
    """A training loss was NaN or infinite (the message names the step and the batch's episodes)."""


class PolicyModule(L.LightningModule):
    """Base LightningModule for policies that map observations to action chunks.

    Args:
        features: ``{dataset key: PolicyFeature}`` (or ``{type, shape}`` mappings) for every input and the
            ``action`` output; cameras are ``(C, H, W)``.
        stats: ``{key: {stat: array}}`` dataset statistics, or ``None`` when the normalizer buffers will be
            loaded from a checkpoint.
        optimizer: ``None`` (the default: :meth:`default_optimizer`, the paper's optimizer built from the subclass's
            ``optimizer_*`` arguments) or a full replacement, a callable ``optimizer(params) -> Optimizer`` (a Hydra
            ``_partial_`` node). Parameter groups from :meth:`get_optim_params` keep their own ``lr`` etc.
        lr_scheduler: ``None`` (the default: :meth:`default_lr_scheduler`, built from the subclass's ``scheduler_*``
            arguments), ``False`` (no scheduler) or a full replacement, a callable
            ``lr_scheduler(optimizer, [num_training_steps]) -> LRScheduler``. ``num_training_steps`` is filled
            from ``trainer.estimated_stepping_batches`` when the callable has such a parameter that the
            partial does not bind (e.g. ``diffusers.optimization.get_scheduler``). Stepped every optimizer step.
        normalization_mapping: ``{FeatureType name: NormalizationMode name}``; ``None`` uses the class's
            ``default_normalization_mapping``.
        use_imagenet_stats: use ImageNet mean/std for cameras (for ImageNet-pretrained backbones).

    Batches are dicts in lerobot's collated layout, raw (unnormalized); ``training_step`` normalizes them.
    Subclasses must call :meth:`_save_policy_hparams` at the end of their ``__init__`` so that
    ``load_from_checkpoint`` can rebuild them (it also runs :meth:`check_optimizer_arguments`).

    Raises:
        ValueError: (from :meth:`_save_policy_hparams`) ``optimizer`` / ``lr_scheduler`` given together with a
            non-default value of an argument they replace (see :meth:`check_optimizer_arguments`).
    """

    default_normalization_mapping: dict[str, str] = {
        "VISUAL": "MEAN_STD",
        "STATE": "MEAN_STD",
        "ENV": "MEAN_STD",
        "ACTION": "MEAN_STD",
    }
    #: Constructor arguments that :meth:`default_optimizer` reads (lerobot's names: ``optimizer_lr``, ...). An explicit
    #: ``optimizer`` replaces them, so it may not be combined with a non-default value of one of them.
    optimizer_hparams: tuple[str, ...] = ()
    #: Constructor arguments that :meth:`default_lr_scheduler` reads (``scheduler_warmup_steps``, ...). An explicit
    #: ``lr_scheduler`` (or ``False``) replaces them, so it may not be combined with a non-default value of one of them.
    lr_scheduler_hparams: tuple[str, ...] = ()

    def __init__(
        self,
        features: Mapping[str, Any],
        stats: Mapping[str, Mapping[str, Any]] | None = None,
        optimizer: OptimizerFactory | None = None,
        lr_scheduler: Callable | None | bool = None,
        normalization_mapping: Mapping[str, str] | None = None,
        use_imagenet_stats: bool = False,
    ):
        super().__init__()
        self.features = coerce_features(features)
        if ACTION not in self.features:
            raise KeyError(f"features must contain '{ACTION}' (the policy output); got {sorted(self.features)}")
        norm_map = coerce_norm_map(normalization_mapping or self.default_normalization_mapping)
        self.normalizer = Normalizer(self.features, stats, norm_map, use_imagenet_stats=use_imagenet_stats)
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.run_config: dict | None = None  # attached by train.py; used by the ExportPretrained callback
        self._action_queue: collections.deque[Tensor] = collections.deque()

    @staticmethod
    def check_single_frame_chunking(policy_name: str, n_obs_steps: int, n_action_steps: int, chunk_size: int) -> None:
        """Validate the windows of a policy that sees one frame and predicts ``chunk_size`` actions.

        Raises:
            ValueError: ``n_obs_steps != 1`` or ``n_action_steps > chunk_size`` (the message names the policy).
        """
        if n_obs_steps != 1:
            raise ValueError(f"{policy_name} supports n_obs_steps=1 only, got {n_obs_steps}")
        if n_action_steps > chunk_size:
            raise ValueError(f"n_action_steps ({n_action_steps}) must be <= chunk_size ({chunk_size})")

    # ------------------------------------------------------------------ features
    @property
    def input_features(self) -> dict[str, PolicyFeature]:
        """All features except the action output (and rewards)."""
        return {k: f for k, f in self.features.items() if f.type not in (FeatureType.ACTION, FeatureType.REWARD)}

    @property
    def image_keys(self) -> list[str]:
        """Camera keys, in ``features`` order."""
        return [k for k, f in self.features.items() if f.type is FeatureType.VISUAL]

    @property
    def action_dim(self) -> int:
        return int(self.features[ACTION].shape[0])

    def _feature_key(self, ftype: FeatureType) -> str | None:
        keys = [k for k, f in self.features.items() if f.type is ftype]
        if len(keys) > 1:
            raise ValueError(f"more than one {ftype.value} feature: {keys}; this policy accepts one")
        return keys[0] if keys else None

    def _save_policy_hparams(self, frame=None) -> None:
        """Save the subclass's constructor arguments as hyper-parameters, serializably.

        ``stats``, ``optimizer`` and ``lr_scheduler`` are left out (stats are buffers; the optimizer is a
        training-time callable); ``features`` is stored as ``{key: {type, shape}}``. Then runs
        :meth:`check_optimizer_arguments`.

        Raises:
            ValueError: see :meth:`check_optimizer_arguments`.
        """
        frame = frame or inspect.currentframe().f_back
        self.save_hyperparameters(ignore=["stats", "optimizer", "lr_scheduler"], frame=frame)
        for name in list(self._hparams):
            self._hparams[name] = to_primitive(self._hparams[name])
        self._hparams["features"] = {k: f.to_dict() for k, f in self.features.items()}
        self._hparams_initial = type(self._hparams)(dict(self._hparams))
        self.check_optimizer_arguments()

    @classmethod
    def optimizer_hparam_defaults(cls) -> dict[str, Any]:
        """``{name: default}`` of the constructor arguments in :attr:`optimizer_hparams` and
        :attr:`lr_scheduler_hparams` (JSON-like values: tuples become lists).

        Raises:
            TypeError: one of those names is not an argument of ``cls.__init__`` with a default (a class bug).
        """
        params = inspect.signature(cls.__init__).parameters
        out = {}
        for name in (*cls.optimizer_hparams, *cls.lr_scheduler_hparams):
            if name not in params or params[name].default is inspect.Parameter.empty:
                raise TypeError(f"{cls.__qualname__} lists '{name}' as an optimizer/scheduler hyper-parameter, but "
                                "it is not a constructor argument with a default")
            out[name] = to_primitive(params[name].default)
        return out

    def check_optimizer_arguments(self) -> None:
        """Refuse an explicit ``optimizer`` / ``lr_scheduler`` that would silently replace hyper-parameters.

        ``optimizer`` replaces :meth:`default_optimizer`, which is where the arguments of :attr:`optimizer_hparams`
        are used; ``lr_scheduler`` (a callable, or ``False``) replaces :meth:`default_lr_scheduler` and the arguments
        of :attr:`lr_scheduler_hparams`. Combining one with a non-default value of such an argument is ambiguous.

        Raises:
            ValueError: naming the replacement (``policy.optimizer`` = its target) and the arguments with their values
                and defaults, with the two ways out (drop the node, or reset the arguments to their defaults).
        """
        defaults = self.optimizer_hparam_defaults()
        for node, names, given in (("optimizer", self.optimizer_hparams, self.optimizer_factory),
                                   ("lr_scheduler", self.lr_scheduler_hparams, self.lr_scheduler_factory)):
            if given is None:
                continue
            changed = {n: self._hparams.get(n) for n in names if to_primitive(self._hparams.get(n)) != defaults[n]}
            if not changed:
                continue
            what = "False (no scheduler)" if given is False else _factory_name(given)
            default_fn = "default_optimizer" if node == "optimizer" else "default_lr_scheduler"
            values = ", ".join(f"{n}={v!r} (default {defaults[n]!r})" for n, v in changed.items())
            resets = " ".join(f"policy.{n}={defaults[n]!r}" for n in changed)
            own = "optimizer" if node == "optimizer" else "learning-rate scheduler"
            keep = "put them into the node and reset them" if given is not False else "reset them"
            raise ValueError(
                f"{type(self).__name__}: policy.{node} = {what} replaces {default_fn}, the only place where {values} "
                f"would be used, so both cannot be set. Either drop policy.{node} (the policy's own {own} then uses "
                f"these values) or {keep}: {resets}.")

    # ------------------------------------------------------------------ to implement
    @property
    def delta_indices(self) -> dict[str, list[int]]:
        """``{dataset key: [int frame offsets]}`` for the keys this policy needs as temporal windows."""
        raise NotImplementedError

    @property
    def n_action_steps(self) -> int:
        """How many actions of a predicted chunk ``select_action`` executes before predicting again."""
        return int(self.hparams.get("n_action_steps", 1))

    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float | Tensor]]:
        """Loss on a **normalized** batch: ``(scalar loss, {name: scalar})``."""
        raise NotImplementedError

    def _predict_chunk(self, batch: dict[str, Any]) -> Tensor:
        """Action chunk ``(B, n, action_dim)`` in normalized space from a **normalized** observation batch."""
        raise NotImplementedError

    def _prepare_observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        """Hook for ``select_action``: turn one raw single-frame observation into what
        ``predict_action_chunk`` takes (e.g. stack an observation history). Default: unchanged."""
        return observation

    # ------------------------------------------------------------------ inference
    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float | Tensor]]:
        """Loss on a raw batch: normalize, then :meth:`compute_loss`."""
        return self.compute_loss(self.normalizer.normalize(batch))

    @torch.no_grad()
    def predict_action_chunk(self, observation: dict[str, Tensor]) -> Tensor:
        """Predict an action chunk from a raw observation batch.

        Args:
            observation: raw (unnormalized) inputs, batched, in the layout the policy's ``delta_indices``
                implies (see the subclass).
        Returns:
            ``(B, n_action_steps, action_dim)`` actions in the dataset's units (unnormalized).
        """
        obs = self.normalizer.normalize(observation, keys=list(self.input_features))
        chunk = self._predict_chunk(obs)
        return self.normalizer.unnormalize_tensor(ACTION, chunk)

    @torch.no_grad()
    def select_action(self, observation: dict[str, Tensor]) -> Tensor:
        """Return the next action ``(B, action_dim)`` (unnormalized) for one raw observation frame.

        ``observation`` holds single frames: states ``(B, D)``, cameras ``(B, C, H, W)`` in [0, 1]. A chunk
        is predicted when the queue is empty and its first ``n_action_steps`` actions are queued, so
        ``n_action_steps`` calls cost one inference. Call ``eval()`` first and :meth:`reset` between episodes.
        """
        obs = self._prepare_observation(observation)
        if not self._action_queue:
            chunk = self.predict_action_chunk(obs)[:, : self.n_action_steps]
            self._action_queue.extend(chunk.transpose(0, 1))
        return self._action_queue.popleft()

    def reset(self) -> None:
        """Clear the action queue (and, in subclasses, observation history); call at episode start."""
        self._action_queue.clear()

    # ------------------------------------------------------------------ training
    def _batch_size(self, batch: Mapping[str, Any]) -> int:
        return int(batch[ACTION].shape[0]) if ACTION in batch else 1

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss, info = self(batch)
        self.require_finite_loss(loss, batch)
        bs = self._batch_size(batch)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=bs)
        for name, value in info.items():
            self.log(f"train/{name}", value, prog_bar=True, on_step=True, on_epoch=True, batch_size=bs)
        return loss

    def require_finite_loss(self, loss: Tensor, batch: Mapping[str, Any]) -> None:
        """Stop training at the first NaN/inf loss, before the optimizer step spreads it into the weights.

        Raises:
            NonFiniteLossError: naming the global step, the loss and the batch's episode (and frame) indices.
        """
        if bool(torch.isfinite(loss.detach()).all()):
            return
        where = []
        for key in ("episode_index", "frame_index"):
            value = batch.get(key) if isinstance(batch, Mapping) else None
            if isinstance(value, Tensor):
                values = sorted(set(value.flatten().tolist()))
                more = f" (+{len(values) - 20} more)" if len(values) > 20 else ""
                where.append(f"{key} {values[:20]}{more}")
        raise NonFiniteLossError(
            f"{type(self).__name__}: non-finite training loss {loss.detach().flatten()[:4].tolist()} at global step "
            f"{self.global_step}; batch " + ("; ".join(where) or "without episode_index") +
            ". Check the data (python -m robolearn.datasets.validate <root> reports non-finite values), the "
            "learning rate and the precision.")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss, info = self(batch)
        bs = self._batch_size(batch)
        self.log("val/loss", loss, prog_bar=True, batch_size=bs, sync_dist=True)
        for name, value in info.items():
            self.log(f"val/{name}", value, batch_size=bs, sync_dist=True)
        return loss

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Lightning's clipping, except by norm under FSDP: Lightning's ``FSDPPrecision`` refuses that, so the norm
        is computed over the sharded gradients by FSDP itself (``FullyShardedDataParallel.clip_grad_norm_``)."""
        self.clip_gradients_any_strategy(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def clip_gradients_any_strategy(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """``self.clip_gradients`` for every strategy (see :meth:`configure_gradient_clipping`); ``None`` or a value
        ``<= 0`` disables clipping."""
        if gradient_clip_val is None or gradient_clip_val <= 0:
            return
        algorithm = gradient_clip_algorithm or "norm"
        trainer = self._trainer
        wrapped = trainer.strategy.model if trainer is not None else None
        if algorithm == "norm" and hasattr(wrapped, "clip_grad_norm_"):  # FSDP-wrapped module
            wrapped.clip_grad_norm_(float(gradient_clip_val))
            return
        self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val, gradient_clip_algorithm=algorithm)

    def get_optim_params(self) -> Any:
        """Parameters or param groups handed to the optimizer (default: all trainable params). A group's own
        ``lr``/``weight_decay`` (from constructor arguments such as ACT's ``optimizer_lr_backbone``) apply with
        :meth:`default_optimizer` and with an explicit ``optimizer`` alike."""
        return [p for p in self.parameters() if p.requires_grad]

    def default_optimizer(self, params: Any) -> torch.optim.Optimizer:
        """The optimizer used when ``optimizer`` is ``None``: subclasses build the paper's from the constructor
        arguments they list in :attr:`optimizer_hparams`. Base: ``AdamW(lr=1e-4)``."""
        return torch.optim.AdamW(params, lr=1e-4)

    def default_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """The scheduler used when ``lr_scheduler`` is ``None``, from the arguments in :attr:`lr_scheduler_hparams`
        (default: none)."""
        return None

    def configure_optimizers(self) -> Any:
        """Lightning hook: ``optimizer`` (or :meth:`default_optimizer`) over :meth:`get_optim_params`, and the
        scheduler stepped every optimizer step (``lr_scheduler``, :meth:`default_lr_scheduler`, or none for ``False``).

        Raises:
            ValueError: an explicit ``optimizer`` binds ``lr`` while every parameter group sets its own ``lr`` (the
                node's value would be ignored; set the policy's group learning rates instead, e.g. SAC's
                ``actor_lr``/``critic_lr``/``temperature_lr``).
        """
        params = self.get_optim_params()
        factory = self.optimizer_factory
        if factory is not None and "lr" in _bound_keywords(factory) and isinstance(params, list) and params \
                and all(isinstance(g, Mapping) and "lr" in g for g in params):
            raise ValueError(
                f"{type(self).__name__}: policy.optimizer sets lr={_bound_keywords(factory)['lr']!r}, but every "
                f"parameter group of {type(self).__name__}.get_optim_params sets its own lr, so it would be ignored; "
                "drop lr from policy.optimizer and set the policy's learning-rate arguments instead")
        optimizer = factory(params) if factory is not None else self.default_optimizer(params)
        sched_factory = self.lr_scheduler_factory
        if sched_factory is False:
            scheduler = None
        elif sched_factory is None:
            scheduler = self.default_lr_scheduler(optimizer)
        else:
            kwargs = {}
            if _wants_arg(sched_factory, "num_training_steps"):
                kwargs["num_training_steps"] = int(self.trainer.estimated_stepping_batches)
            scheduler = sched_factory(optimizer=optimizer, **kwargs)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
