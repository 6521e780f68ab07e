"""``SACPolicy``: Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications") as a
LightningModule with manual optimization, with lerobot's parameter names and defaults (``gaussian_actor`` policy +
``sac`` algorithm) and HIL-SERL's (Luo et al. 2024) RLPD-style use of offline data through the data module.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from robolearn.features import ACTION, FeatureType
from robolearn.policies.base import PolicyModule
from robolearn.policies.sac.model import (CriticEnsemble, DiscreteCritic, ObservationEncoder, TanhGaussianActor,
                                         polyak_update)

DEFAULT_ACTOR_NETWORK = {"hidden_dims": [256, 256], "activate_final": True}
DEFAULT_CRITIC_NETWORK = {"hidden_dims": [256, 256], "activate_final": True, "layer_norm": True}


class SACPolicy(PolicyModule):
    """Soft Actor-Critic with a tanh-squashed Gaussian actor, a critic ensemble with Polyak-averaged targets and
    automatic entropy temperature.

    Inputs: ``observation.state`` and/or ``observation.environment_state`` ``(B, D)`` and/or cameras
    ``(B, 3, H, W)``. Output: ``action`` ``(B, A)``; the actor's ``[-1, 1]`` range is mapped to the action's
    ``[min, max]`` statistics (MIN_MAX normalization, lerobot's default for SAC), so ``stats["action"]`` should be
    the env's action bounds (what :class:`~robolearn.rl.datamodule.OnlineRLDataModule` provides).

    Training batches are transitions (``observation.*``, ``action``, ``next.reward``, ``next.done``,
    ``next.observation.*``, optional ``next.n_steps``; see :mod:`robolearn.rl.replay`). One ``training_step`` is one
    gradient update and one Lightning optimizer step (so ``trainer.max_steps`` counts gradient updates):

    - critic: ``L_Q = sum_i mean_B (Q_i(s, a) - y)^2`` with ``y = r + discount^k (1 - done) (min_j Q'_j(s', a') -
      alpha log pi(a'|s'))``, ``a' ~ pi(s')`` (the entropy term only when ``use_backup_entropy``; ``min`` over
      ``num_subsample_critics`` random target critics when set);
    - actor: ``L_pi = mean_B (alpha log pi(a|s) - min_i Q_i(s, a))``, ``a ~ pi(s)`` (critic weights not updated by it);
    - temperature: ``L_alpha = mean_B (-alpha (log pi(a|s) + target_entropy))``: alpha rises when the policy's entropy
      falls below ``target_entropy``;
    - targets: ``theta' <- tau theta + (1 - tau) theta'`` after every update (``tau = critic_target_update_weight``).

    With ``num_discrete_actions`` set (HIL-SERL's grasp critic, lerobot's names), the **last** action dimension is a
    discrete gripper command: the actor and the critic ensemble act on the first ``A - 1`` dimensions only, and a
    :class:`~robolearn.policies.sac.model.DiscreteCritic` on the critic encoder's features gives ``Q_g(s, .)``
    ``(B, num_discrete_actions)``, trained every update by a double-DQN loss (as lerobot's
    ``compute_loss_discrete_critic``):

    - ``L_g = mean_B (Q_g(s, i) - y_g)^2``, ``y_g = r + p + discount^k (1 - done) Q'_g(s', argmax_j Q_g(s', j))``,
      with ``i`` the stored command's index, ``p = complementary_info.discrete_penalty`` when the batch has it (0
      otherwise), the online network choosing and the target network ``Q'_g`` (own Polyak copy, same ``tau``, on the
      target encoder) evaluating the next action.

    **Gripper command mapping.** Index ``i`` in ``0..n-1`` is the normalized value ``-1 + 2 i / (n - 1)``, unnormalized
    like any action: with the default MIN_MAX action normalization the env command is ``linspace(min, max, n)[i]`` of
    the gripper dimension's bounds, e.g. bounds ``[0, 2]`` and ``n = 3`` give lerobot's / gym-hil's commands
    ``0 / 1 / 2`` (close / stay / open), bounds ``[-1, 1]`` give ``-1 / 0 / +1``. The replay buffer stores the command
    the env received (env units, like human interventions and recorded demos); the loss maps it back to the nearest
    index, so uniformly random warm-up commands count as the nearest discrete command. ``select_action`` and
    ``sample_action`` both take the greedy ``argmax`` of ``Q_g`` (as lerobot; exploration of the gripper comes from the
    random warm-up and from human interventions).

    Every update trains the critic; the actor and temperature are trained on the last of each group of
    ``utd_ratio`` updates, once every ``policy_update_freq`` groups (lerobot's schedule). The three losses of an
    update are summed and stepped together by one Adam with three parameter groups (critic / actor / temperature
    learning rates); since their gradients touch disjoint parameters this equals three Adam steps, except that the
    actor's loss is evaluated with the critic *before* this update's critic step.

    Args:
        features, stats, normalization_mapping, use_imagenet_stats: see :class:`~robolearn.policies.base.PolicyModule`.
        optimizer: ``optimizer(param_groups) -> Optimizer`` (Hydra ``_partial_``); None = ``torch.optim.Adam``.
            Each group carries its own ``lr`` (``actor_lr``, ``critic_lr``, ``temperature_lr``), with any optimizer;
            a node that sets ``lr`` raises in ``configure_optimizers`` (it would be ignored).
        lr_scheduler: optional ``lr_scheduler(optimizer) -> LRScheduler``, stepped every update.
        discount: gamma.
        temperature_init: initial alpha (lerobot 1.0; its docs suggest ~1e-2 for real robots).
        target_entropy: entropy target in nats; None = ``-|A| / 2`` (lerobot's default; the SAC paper uses ``-|A|``).
        use_backup_entropy: include ``-alpha log pi`` in the TD target (the paper's soft backup).
        num_critics: size of the critic ensemble (2 = clipped double Q).
        num_subsample_critics: take the target minimum over this many randomly chosen critics (REDQ); None = all.
        critic_target_update_weight: Polyak tau.
        actor_lr, critic_lr, temperature_lr: learning rates of the actor, critic (and grasp critic) and temperature
            parameter groups (lerobot's SACConfig names and defaults).
        grad_clip_norm: max L2 norm of the critic and of the actor gradients (each clipped separately; <= 0 = off).
        utd_ratio: gradient updates per environment step (read by the online data module).
        policy_update_freq: actor/temperature update every this many update groups.
        latent_dim, state_encoder_hidden_dim, image_encoder_hidden_dim, image_embedding_pooling_dim: encoder widths
            (see :class:`~robolearn.policies.sac.model.ObservationEncoder`).
        vision_encoder_name: timm backbone for cameras (e.g. ``"resnet10t"``); None = a small conv trunk.
        freeze_vision_encoder: freeze the timm backbone (lerobot default True).
        pretrained_vision_encoder: load timm's pretrained weights (needs them cached or network).
        shared_encoder: the actor uses the critic's encoder output (detached; the encoder learns from the critic
            loss only), else the actor has its own encoder.
        actor_network_kwargs / critic_network_kwargs: :class:`~robolearn.policies.sac.model.MLP` arguments; None =
            ``{"hidden_dims": [256, 256], "activate_final": True}`` (critic adds ``layer_norm: True``, as RLPD).
        std_min, std_max: bounds of the actor's standard deviation.
        init_final: uniform init range of the actor's output layers.
        num_discrete_actions: None = all action dimensions continuous; ``n >= 2`` = the last action dimension is a
            discrete gripper command with ``n`` values (3 = close / stay / open in lerobot), chosen by the grasp critic.
        discrete_critic_network_kwargs: :class:`~robolearn.policies.sac.model.MLP` arguments of the grasp critic;
            None = the critic's default (``[256, 256]``, LayerNorm).

    Raises:
        ValueError: invalid sizes, rates or ``num_subsample_critics > num_critics``; ``num_discrete_actions < 2`` or
            set with a 1-D action (no continuous dimension left); in ``on_fit_start`` an fp16
            precision (gradient clipping here does not unscale fp16 gradients; use 32 or bf16).
    """

    default_normalization_mapping = {"VISUAL": "MEAN_STD", "STATE": "MIN_MAX", "ENV": "MIN_MAX", "ACTION": "MIN_MAX"}

    def __init__(
        self,
        features: Mapping[str, Any],
        stats: Mapping[str, Mapping[str, Any]] | None = None,
        optimizer: Callable | None = None,
        lr_scheduler: Callable | None | bool = None,
        normalization_mapping: Mapping[str, str] | None = None,
        use_imagenet_stats: bool = False,
        discount: float = 0.99,
        temperature_init: float = 1.0,
        target_entropy: float | None = None,
        use_backup_entropy: bool = True,
        num_critics: int = 2,
        num_subsample_critics: int | None = None,
        critic_target_update_weight: float = 0.005,
        actor_lr: float = 3e-4,
        critic_lr: float = 3e-4,
        temperature_lr: float = 3e-4,
        grad_clip_norm: float = 40.0,
        utd_ratio: int = 1,
        policy_update_freq: int = 1,
        latent_dim: int = 256,
        state_encoder_hidden_dim: int = 256,
        image_encoder_hidden_dim: int = 32,
        image_embedding_pooling_dim: int = 8,
        vision_encoder_name: str | None = None,
        freeze_vision_encoder: bool = True,
        pretrained_vision_encoder: bool = False,
        shared_encoder: bool = True,
        actor_network_kwargs: Mapping[str, Any] | None = None,
        critic_network_kwargs: Mapping[str, Any] | None = None,
        std_min: float = 1e-5,
        std_max: float = 10.0,
        init_final: float | None = 0.05,
        num_discrete_actions: int | None = None,
        discrete_critic_network_kwargs: Mapping[str, Any] | None = None,
    ):
        super().__init__(features, stats, optimizer, lr_scheduler, normalization_mapping, use_imagenet_stats)
        if not 0.0 <= discount <= 1.0:
            raise ValueError(f"discount must be in [0, 1], got {discount}")
        if temperature_init <= 0:
            raise ValueError(f"temperature_init must be > 0, got {temperature_init}")
        if not 0.0 < critic_target_update_weight <= 1.0:
            raise ValueError(f"critic_target_update_weight must be in (0, 1], got {critic_target_update_weight}")
        if utd_ratio < 1 or policy_update_freq < 1:
            raise ValueError(f"utd_ratio ({utd_ratio}) and policy_update_freq ({policy_update_freq}) must be >= 1")
        if num_subsample_critics is not None and not 1 <= num_subsample_critics <= num_critics:
            raise ValueError(f"num_subsample_critics ({num_subsample_critics}) must be in [1, num_critics={num_critics}]")
        if len(self.features[ACTION].shape) != 1:
            raise ValueError(f"SAC needs a 1-D action feature, got shape {self.features[ACTION].shape}")
        if num_discrete_actions is not None:
            if int(num_discrete_actions) < 2:
                raise ValueError(f"num_discrete_actions must be None or >= 2, got {num_discrete_actions}")
            if self.action_dim < 2:
                raise ValueError(f"num_discrete_actions={num_discrete_actions} makes the last action dimension "
                                 f"discrete, but the action has {self.action_dim} dimension(s); SAC needs at least "
                                 "one continuous")
        self.num_discrete_actions = None if num_discrete_actions is None else int(num_discrete_actions)
        # the actor and the critic ensemble act on the continuous part; target entropy -|A|/2 counts all dimensions
        # (lerobot: continuous + 1 with a discrete head)
        self.continuous_action_dim = self.action_dim - (1 if self.num_discrete_actions is not None else 0)
        self.automatic_optimization = False
        self.discount = float(discount)
        self.target_entropy = float(target_entropy) if target_entropy is not None else -self.action_dim / 2.0
        self.use_backup_entropy = bool(use_backup_entropy)
        self.num_subsample_critics = num_subsample_critics
        self.tau = float(critic_target_update_weight)
        self.actor_lr, self.critic_lr, self.temperature_lr = float(actor_lr), float(critic_lr), float(temperature_lr)
        self.grad_clip_norm = float(grad_clip_norm)
        self.utd_ratio, self.policy_update_freq = int(utd_ratio), int(policy_update_freq)
        self.shared_encoder = bool(shared_encoder)

        state_shapes = {k: int(f.shape[0]) for k, f in self.input_features.items() if f.type is not FeatureType.VISUAL}
        image_shapes = {k: f.shape for k, f in self.input_features.items() if f.type is FeatureType.VISUAL}

        def encoder() -> ObservationEncoder:
            return ObservationEncoder(state_shapes, image_shapes, latent_dim, state_encoder_hidden_dim,
                                      image_encoder_hidden_dim, image_embedding_pooling_dim, vision_encoder_name,
                                      freeze_vision_encoder, pretrained_vision_encoder)

        self.encoder = encoder()
        self.critics = CriticEnsemble(self.encoder.out_dim, self.continuous_action_dim, num_critics,
                                      dict(critic_network_kwargs or DEFAULT_CRITIC_NETWORK))
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_encoder = None if self.shared_encoder else encoder()
        self.actor = TanhGaussianActor(self.encoder.out_dim, self.continuous_action_dim,
                                       dict(actor_network_kwargs or DEFAULT_ACTOR_NETWORK), std_min, std_max, init_final)
        self.log_alpha = torch.nn.Parameter(torch.tensor(math.log(temperature_init)))
        self.discrete_critic: DiscreteCritic | None = None
        self.discrete_critic_target: DiscreteCritic | None = None
        if self.num_discrete_actions is not None:
            self.discrete_critic = DiscreteCritic(self.encoder.out_dim, self.num_discrete_actions,
                                                  dict(discrete_critic_network_kwargs or DEFAULT_CRITIC_NETWORK))
            self.discrete_critic_target = copy.deepcopy(self.discrete_critic).requires_grad_(False)
        self.num_policy_updates = 0  # actor/temperature updates in this process (logged as train/policy_updates)
        self._save_policy_hparams()

    # ------------------------------------------------------------------ data contract
    @property
    def delta_indices(self) -> dict[str, list[int]]:
        """SAC uses single frames: no windows."""
        return {}

    @property
    def temperature(self) -> Tensor:
        """alpha = exp(log_alpha) (a scalar tensor)."""
        return self.log_alpha.exp()

    def _inputs(self, batch: Mapping[str, Any], prefix: str = "") -> dict[str, Tensor]:
        missing = [prefix + k for k in self.input_features if prefix + k not in batch]
        if missing:
            raise KeyError(f"SAC batch lacks {missing}; batch keys: {sorted(batch)} (SAC trains on replay transitions, "
                           "e.g. from robolearn.rl.datamodule.OnlineRLDataModule)")
        return {k: batch[prefix + k] for k in self.input_features}

    def normalize_transitions(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Normalize ``observation.*``, ``next.observation.*`` and ``action`` of a raw transition batch."""
        out = dict(batch)
        for key in self.input_features:
            for k in (key, "next." + key):
                if k in out:
                    out[k] = self.normalizer.normalize_tensor(key, out[k])
        if ACTION in out:
            out[ACTION] = self.normalizer.normalize_tensor(ACTION, out[ACTION])
        return out

    def _actor_features(self, obs: Mapping[str, Tensor], critic_feat: Tensor | None = None) -> Tensor:
        if self.actor_encoder is not None:
            return self.actor_encoder(obs)
        feat = critic_feat if critic_feat is not None else self.encoder(obs)
        return feat.detach()

    # ------------------------------------------------------------------ inference
    def discrete_index_to_action(self, index: Tensor) -> Tensor:
        """Discrete indices ``(...)`` (int, ``0..n-1``) -> normalized gripper values ``(...)`` ``-1 + 2 i / (n - 1)``
        (unnormalized by the action statistics into the env command; see the class docstring)."""
        n = self._require_discrete()
        return index.float() * (2.0 / (n - 1)) - 1.0

    def action_to_discrete_index(self, value: Tensor) -> Tensor:
        """Normalized gripper values ``(...)`` -> the nearest discrete index ``(...)`` (int64, clamped to ``0..n-1``);
        the inverse of :meth:`discrete_index_to_action`."""
        n = self._require_discrete()
        return torch.round((value + 1.0) * ((n - 1) / 2.0)).clamp(0, n - 1).long()

    def discrete_action_commands(self) -> Tensor:
        """The ``n`` env commands of the gripper dimension, ``(n,)`` in the action's units (index ``i`` -> entry
        ``i``)."""
        n = self._require_discrete()
        normalized = torch.zeros(n, self.action_dim, device=self.log_alpha.device)
        normalized[:, -1] = self.discrete_index_to_action(torch.arange(n, device=normalized.device))
        return self.normalizer.unnormalize_tensor(ACTION, normalized)[:, -1]

    def _require_discrete(self) -> int:
        if self.num_discrete_actions is None:
            raise RuntimeError("this SACPolicy has no discrete gripper head (num_discrete_actions=None)")
        return self.num_discrete_actions

    def _act(self, obs: Mapping[str, Tensor], deterministic: bool) -> Tensor:
        """Normalized action ``(B, A)``: the actor's continuous part, then (with a grasp critic) the greedy discrete
        command ``argmax_j Q_g(s, j)`` as the last dimension."""
        critic_feat = None
        if self.discrete_critic is not None or self.actor_encoder is None:
            critic_feat = self.encoder(obs)
        action, _, _ = self.actor(self._actor_features(obs, critic_feat), deterministic=deterministic)
        if self.discrete_critic is None:
            return action
        index = self.discrete_critic(critic_feat).argmax(-1)
        return torch.cat([action, self.discrete_index_to_action(index)[:, None].to(action.dtype)], -1)

    def _predict_chunk(self, batch: dict[str, Any]) -> Tensor:
        """Deterministic action ``tanh(mean)`` (+ the greedy gripper command), ``(B, 1, A)`` in normalized units."""
        return self._act(self._inputs(batch), deterministic=True)[:, None]

    @torch.no_grad()
    def sample_action(self, observation: Mapping[str, Tensor]) -> Tensor:
        """A stochastic action ``a ~ pi(.|s)`` ``(B, A)`` in the action's units (for exploration in the env), from a
        raw observation batch (states ``(B, D)``, cameras ``(B, 3, H, W)`` in [0, 1]); with a grasp critic the last
        dimension is its greedy command (one of :meth:`discrete_action_commands`)."""
        obs = self.normalizer.normalize(self._inputs(observation), keys=list(self.input_features))
        return self.normalizer.unnormalize_tensor(ACTION, self._act(obs, deterministic=False))

    # ------------------------------------------------------------------ losses (normalized batches)
    @torch.no_grad()
    def td_target(self, batch: Mapping[str, Tensor]) -> Tensor:
        """``y = r + discount^k (1 - done) (min_j Q'_j(s', a') - alpha log pi(a'|s'))``, ``(B,)``, for a normalized
        transition batch (``k = next.n_steps``, 1 when absent; the entropy term only with ``use_backup_entropy``)."""
        next_obs = self._inputs(batch, "next.")
        reward = batch["next.reward"].reshape(-1)
        done = batch["next.done"].reshape(-1).float()
        n_steps = batch["next.n_steps"].reshape(-1).float() if "next.n_steps" in batch else torch.ones_like(reward)
        next_action, next_log_prob, _ = self.actor(self._actor_features(next_obs))
        q_next = self.target_critics(self.target_encoder(next_obs), next_action)  # (N, B)
        if self.num_subsample_critics is not None:
            pick = torch.randperm(q_next.shape[0], device=q_next.device)[: self.num_subsample_critics]
            q_next = q_next[pick]
        v_next = q_next.min(0).values
        if self.use_backup_entropy:
            v_next = v_next - self.temperature * next_log_prob
        return reward + (1.0 - done) * self.discount ** n_steps * v_next

    def critic_loss(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """``(L_Q, info, critic features of s)`` for a normalized transition batch (see the class docstring)."""
        obs = self._inputs(batch)
        td_target = self.td_target(batch)
        feat = self.encoder(obs)
        q = self.critics(feat, batch[ACTION][..., : self.continuous_action_dim])
        loss = ((q - td_target[None]) ** 2).mean(1).sum()
        return loss, {"q_mean": q.mean().detach(), "td_target_mean": td_target.mean()}, feat

    @torch.no_grad()
    def discrete_td_target(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Double-DQN target of the grasp critic, ``(B,)``: ``y_g = r + p + discount^k (1 - done) Q'_g(s', j*)`` with
        ``j* = argmax_j Q_g(s', j)`` (online network on the online encoder chooses, target network on the target
        encoder evaluates), ``p = complementary_info.discrete_penalty`` (0 when absent), ``k = next.n_steps`` (1 when
        absent), for a normalized transition batch."""
        self._require_discrete()
        next_obs = self._inputs(batch, "next.")
        reward = batch["next.reward"].reshape(-1)
        if "complementary_info.discrete_penalty" in batch:
            reward = reward + batch["complementary_info.discrete_penalty"].reshape(-1).to(reward.dtype)
        done = batch["next.done"].reshape(-1).float()
        n_steps = batch["next.n_steps"].reshape(-1).float() if "next.n_steps" in batch else torch.ones_like(reward)
        best_next = self.discrete_critic(self.encoder(next_obs)).argmax(-1, keepdim=True)
        q_next = self.discrete_critic_target(self.target_encoder(next_obs)).gather(-1, best_next).squeeze(-1)
        return reward + (1.0 - done) * self.discount ** n_steps * q_next

    def discrete_critic_loss(self, batch: Mapping[str, Tensor], critic_feat: Tensor | None = None
                             ) -> tuple[Tensor, dict[str, Tensor]]:
        """``(L_g, info)``: ``mean_B (Q_g(s, i) - y_g)^2`` with ``i`` the index of the stored gripper command (last
        action dimension, normalized) for a normalized transition batch; ``critic_feat`` = the critic encoder's
        features of ``s`` (recomputed when None; the encoder receives this loss's gradient too, as in lerobot)."""
        self._require_discrete()
        target = self.discrete_td_target(batch)
        feat = critic_feat if critic_feat is not None else self.encoder(self._inputs(batch))
        index = self.action_to_discrete_index(batch[ACTION][..., -1])
        q = self.discrete_critic(feat).gather(-1, index[:, None]).squeeze(-1)
        loss = ((q - target) ** 2).mean()
        return loss, {"discrete_q_mean": q.mean().detach(), "discrete_td_target_mean": target.mean()}

    def actor_temperature_loss(self, batch: Mapping[str, Tensor], critic_feat: Tensor | None = None
                               ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``(L_pi, L_alpha, info)``; the critic's weights receive no gradient from ``L_pi``."""
        obs = self._inputs(batch)
        feat = critic_feat.detach() if critic_feat is not None else self.encoder(obs).detach()
        action, log_prob, _ = self.actor(self._actor_features(obs, feat))
        params = list(self.critics.parameters())
        flags = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad_(False)
        try:
            q = self.critics(feat, action).min(0).values
        finally:
            for p, f in zip(params, flags):
                p.requires_grad_(f)
        actor_loss = (self.temperature.detach() * log_prob - q).mean()
        temperature_loss = (-self.temperature * (log_prob.detach() + self.target_entropy)).mean()
        return actor_loss, temperature_loss, {"entropy": -log_prob.mean().detach()}

    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Sum of the three losses on a normalized batch (used by ``forward``; training uses ``training_step``)."""
        critic, info, feat = self.critic_loss(batch)
        actor, temp, info2 = self.actor_temperature_loss(batch, feat)
        total = critic + actor + temp
        if self.discrete_critic is not None:
            discrete, info3 = self.discrete_critic_loss(batch, feat)
            total = total + discrete
            info.update(discrete_critic_loss=discrete.detach(), **info3)
        return total, {"critic_loss": critic.detach(), "actor_loss": actor.detach(),
                       "temperature_loss": temp.detach(), **info, **info2}

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        return self.compute_loss(self.normalize_transitions(batch))

    # ------------------------------------------------------------------ training
    def is_policy_update(self, update_index: int) -> bool:
        """Whether update number ``update_index`` (0-based) also trains the actor and temperature."""
        group, pos = divmod(int(update_index), self.utd_ratio)
        return pos == self.utd_ratio - 1 and group % self.policy_update_freq == 0

    def on_fit_start(self) -> None:
        precision = str(getattr(self.trainer, "precision", "32"))
        if precision.startswith("16"):
            raise ValueError(f"SACPolicy does not support trainer.precision={precision!r} (fp16 gradients would be "
                             "clipped unscaled); use 32-true or bf16-mixed")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        opt = self.optimizers()
        batch = self.normalize_transitions(batch)
        update_index = int(self.global_step)
        critic_loss, info, feat = self.critic_loss(batch)
        total = critic_loss
        if self.discrete_critic is not None:
            discrete_loss, info_discrete = self.discrete_critic_loss(batch, feat)
            total = total + discrete_loss
            info.update(discrete_critic_loss=discrete_loss.detach(), **info_discrete)
        policy_update = self.is_policy_update(update_index)
        if policy_update:
            actor_loss, temperature_loss, info2 = self.actor_temperature_loss(batch, feat)
            total = total + actor_loss + temperature_loss
            info.update(actor_loss=actor_loss.detach(), temperature_loss=temperature_loss.detach(), **info2)
            self.num_policy_updates += 1
        self.require_finite_loss(total, batch)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(total)
        if self.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self._critic_params(), self.grad_clip_norm)
            if self.discrete_critic is not None:
                torch.nn.utils.clip_grad_norm_(self._discrete_critic_params(), self.grad_clip_norm)
            if policy_update:
                torch.nn.utils.clip_grad_norm_(self._actor_params(), self.grad_clip_norm)
        opt.step()
        sched = self.lr_schedulers()
        if sched is not None:
            sched.step()
        self.update_targets()
        bs = int(batch[ACTION].shape[0])
        self.log("train/loss", critic_loss.detach(), prog_bar=True, on_step=True, batch_size=bs)
        self.log("train/critic_loss", critic_loss.detach(), on_step=True, batch_size=bs)
        self.log("train/temperature", self.temperature.detach(), prog_bar=True, on_step=True, batch_size=bs)
        self.log("train/policy_updates", float(self.num_policy_updates), on_step=True, batch_size=bs)
        for name, value in info.items():
            self.log(f"train/{name}", value, on_step=True, batch_size=bs)
        return critic_loss.detach()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss, info = self(batch)
        self.log("val/loss", loss, batch_size=int(batch[ACTION].shape[0]))
        return loss

    def update_targets(self) -> None:
        """Polyak-average the target encoder, critics and grasp critic towards the online ones
        (tau = critic_target_update_weight)."""
        polyak_update(self.target_critics, self.critics, self.tau)
        polyak_update(self.target_encoder, self.encoder, self.tau)
        if self.discrete_critic is not None:
            polyak_update(self.discrete_critic_target, self.discrete_critic, self.tau)

    def _critic_params(self) -> list[torch.nn.Parameter]:
        return [p for m in (self.encoder, self.critics) for p in m.parameters() if p.requires_grad]

    def _discrete_critic_params(self) -> list[torch.nn.Parameter]:
        if self.discrete_critic is None:
            return []
        return [p for p in self.discrete_critic.parameters() if p.requires_grad]

    def _actor_params(self) -> list[torch.nn.Parameter]:
        mods = [self.actor] + ([self.actor_encoder] if self.actor_encoder is not None else [])
        return [p for m in mods for p in m.parameters() if p.requires_grad]

    def get_optim_params(self) -> list[dict[str, Any]]:
        """Three groups: critic (+ its encoder) at ``critic_lr``, actor at ``actor_lr``, ``log_alpha`` at
        ``temperature_lr``; with a grasp critic a fourth, ``discrete_critic`` at ``critic_lr`` (as lerobot)."""
        groups = [
            {"params": self._critic_params(), "lr": self.critic_lr, "name": "critic"},
            {"params": self._actor_params(), "lr": self.actor_lr, "name": "actor"},
            {"params": [self.log_alpha], "lr": self.temperature_lr, "name": "temperature"},
        ]
        if self.discrete_critic is not None:
            groups.append({"params": self._discrete_critic_params(), "lr": self.critic_lr, "name": "discrete_critic"})
        return groups

    def default_optimizer(self, params: Any) -> torch.optim.Optimizer:
        """Adam over the groups of :meth:`get_optim_params` (their learning rates are the constructor's; Adam's other
        settings are torch's defaults, as lerobot's SAC preset)."""
        return torch.optim.Adam(params)
