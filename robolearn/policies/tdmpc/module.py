"""TD-MPC as a robolearn ``PolicyModule`` (Hansen et al. 2022, https://arxiv.org/abs/2203.04955), trained
offline from reward-labelled windows with the FOWM losses (Feng et al. 2023), as lerobot 0.6.1's ``tdmpc``."""

from __future__ import annotations

import copy
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from robolearn.features import ACTION, REWARD, FeatureType
from robolearn.policies.base import PolicyModule
from robolearn.policies.tdmpc.model import TOLD, ema_update, random_shifts_aug
from robolearn.policies.tdmpc.planner import PlannerConfig, plan


class TDMPCPolicy(PolicyModule):
    """TD-MPC: a latent world model (TOLD) trained with latent consistency, reward, TD and policy losses,
    acting by MPPI planning in latent space (``use_mpc``) or with its policy head ``pi``.

    Parameter names and defaults are lerobot's ``TDMPCConfig`` (FOWM's xArm settings), and the state dict
    (``model.*`` online, ``model_target.*`` EMA target) uses lerobot's key names.

    Inputs: at most one camera ``(3, H, W)`` (square when ``max_random_shift_ratio > 0``), and/or
    ``observation.state`` ``(D_s,)``, and/or ``observation.environment_state`` ``(D_e,)``. Output:
    ``action`` ``(A,)``, MIN_MAX-normalized to [-1, 1] (observations are not normalized by default).

    Training batch (what ``delta_indices`` asks the DataModule for; also what an online replay buffer should
    give): observations ``(B, horizon+1, ...)`` (current then next observations), ``action`` ``(B, horizon,
    A)``, ``next.reward`` ``(B, horizon)``, and optional ``<key>_is_pad`` masks. Loss, summed over the horizon
    with weights ``temporal_decay_coeff ** t`` and averaged over the batch (lerobot's reductions):

    - consistency: MSE between the rolled-out latents and the target encoder's latents of the next observations;
    - reward: MSE between predicted and dataset rewards;
    - Q: TD loss of every Q head against ``r + discount * V(encode(o'))`` (online networks, no gradient);
    - V: expectile regression (``expectile_weight``) towards the minimum of two target Q heads;
    - pi: advantage-weighted regression, weights ``min(exp(advantage_scaling * (Q_target - V)), 100)``.

    ``loss = consistency_coeff*L_cons + reward_coeff*L_r + value_coeff*(L_Q + L_V) + pi_coeff*L_pi``. The
    target network is updated after every optimizer step by EMA with ``target_model_momentum``
    (:meth:`update_target`). Random image shifts are applied only in training mode (lerobot also applies them
    in eval mode).

    Args:
        features, stats, optimizer, lr_scheduler, normalization_mapping, use_imagenet_stats: see
            :class:`~robolearn.policies.base.PolicyModule`. ``optimizer=None`` uses Adam(lr=optimizer_lr); an
            explicit ``optimizer`` replaces ``optimizer_lr`` (combining it with a non-default value raises).
        n_obs_steps: must be 1.
        n_action_repeats: how many times ``select_action`` repeats each planned first action.
        horizon: planning and training horizon ``H`` (steps).
        n_action_steps: planned actions executed per plan (> 1 only with ``use_mpc`` and ``n_action_repeats=1``).
        image_encoder_hidden_dim, state_encoder_hidden_dim, latent_dim, q_ensemble_size, mlp_dim: sizes.
        discount: reward discount ``gamma`` per step.
        use_mpc: plan with MPPI at inference; otherwise act with ``pi``.
        cem_iterations, max_std, min_std, n_gaussian_samples, n_pi_samples, n_elites,
            elite_weighting_temperature, gaussian_mean_momentum, uncertainty_regularizer_coeff: planner
            settings (see :mod:`robolearn.policies.tdmpc.planner`).
        max_random_shift_ratio: image shift as a fraction of the image size (0 disables it).
        reward_coeff, expectile_weight, value_coeff, consistency_coeff, advantage_scaling, pi_coeff,
            temporal_decay_coeff: loss settings (see above).
        target_model_momentum: EMA momentum of the target network.
        optimizer_lr: Adam learning rate used when ``optimizer`` is ``None`` (lerobot's default).

    Raises:
        ValueError: invalid settings (see :meth:`_check_settings`) or features (more than one camera, no
            observation, non-square image with random shifts); an explicit ``optimizer`` with a non-default
            ``optimizer_lr``.
    """

    default_normalization_mapping = {"VISUAL": "IDENTITY", "STATE": "IDENTITY", "ENV": "IDENTITY", "ACTION": "MIN_MAX"}
    optimizer_hparams = ("optimizer_lr",)

    def __init__(
        self,
        features: Mapping[str, Any],
        stats: Mapping[str, Mapping[str, Any]] | None = None,
        optimizer: Callable | None = None,
        lr_scheduler: Callable | None | bool = None,
        normalization_mapping: Mapping[str, str] | None = None,
        use_imagenet_stats: bool = False,
        n_obs_steps: int = 1,
        n_action_repeats: int = 2,
        horizon: int = 5,
        n_action_steps: int = 1,
        image_encoder_hidden_dim: int = 32,
        state_encoder_hidden_dim: int = 256,
        latent_dim: int = 50,
        q_ensemble_size: int = 5,
        mlp_dim: int = 512,
        discount: float = 0.9,
        use_mpc: bool = True,
        cem_iterations: int = 6,
        max_std: float = 2.0,
        min_std: float = 0.05,
        n_gaussian_samples: int = 512,
        n_pi_samples: int = 51,
        uncertainty_regularizer_coeff: float = 1.0,
        n_elites: int = 50,
        elite_weighting_temperature: float = 0.5,
        gaussian_mean_momentum: float = 0.1,
        max_random_shift_ratio: float = 0.0476,
        reward_coeff: float = 0.5,
        expectile_weight: float = 0.9,
        value_coeff: float = 0.1,
        consistency_coeff: float = 20.0,
        advantage_scaling: float = 3.0,
        pi_coeff: float = 0.5,
        temporal_decay_coeff: float = 0.5,
        target_model_momentum: float = 0.995,
        optimizer_lr: float = 3e-4,
    ):
        super().__init__(features, stats, optimizer, lr_scheduler, normalization_mapping, use_imagenet_stats)
        self.n_obs_steps, self.n_action_repeats, self.horizon = n_obs_steps, n_action_repeats, horizon
        self.use_mpc = use_mpc
        self.max_random_shift_ratio = max_random_shift_ratio
        self.discount, self.expectile_weight, self.advantage_scaling = discount, expectile_weight, advantage_scaling
        self.temporal_decay_coeff, self.target_model_momentum = temporal_decay_coeff, target_model_momentum
        self.coeffs = dict(consistency=consistency_coeff, reward=reward_coeff, value=value_coeff, pi=pi_coeff)
        self.optimizer_lr = optimizer_lr
        self.planner = PlannerConfig(
            horizon=horizon, cem_iterations=cem_iterations, n_gaussian_samples=n_gaussian_samples,
            n_pi_samples=n_pi_samples, n_elites=n_elites, elite_weighting_temperature=elite_weighting_temperature,
            gaussian_mean_momentum=gaussian_mean_momentum, min_std=min_std, max_std=max_std, discount=discount,
            uncertainty_regularizer_coeff=uncertainty_regularizer_coeff,
        )
        cams = self.image_keys
        if len(cams) > 1:
            raise ValueError(f"TD-MPC handles at most one camera, got {cams}; drop the others with dataset.exclude_features")
        self.image_key = cams[0] if cams else None
        self.state_key = self._feature_key(FeatureType.STATE)
        self.env_key = self._feature_key(FeatureType.ENV)
        self._check_settings(n_action_steps)
        image_shape = tuple(self.features[self.image_key].shape) if self.image_key else None
        if image_shape is not None and max_random_shift_ratio > 0 and image_shape[1] != image_shape[2]:
            raise ValueError(
                f"camera '{self.image_key}' has shape {image_shape}; random shifts need square images "
                "(set max_random_shift_ratio=0 or resize)"
            )
        self.model = TOLD(
            action_dim=self.action_dim,
            image_shape=image_shape,
            state_dim=self.features[self.state_key].shape[0] if self.state_key else None,
            env_state_dim=self.features[self.env_key].shape[0] if self.env_key else None,
            image_encoder_hidden_dim=image_encoder_hidden_dim,
            state_encoder_hidden_dim=state_encoder_hidden_dim,
            latent_dim=latent_dim,
            mlp_dim=mlp_dim,
            q_ensemble_size=q_ensemble_size,
        )
        self.model_target = copy.deepcopy(self.model)
        self.model_target.requires_grad_(False)
        self._prev_mean: Tensor | None = None
        self._save_policy_hparams()

    def _check_settings(self, n_action_steps: int) -> None:
        """lerobot's ``TDMPCConfig`` checks, plus planner sizes; raises ``ValueError`` naming the setting."""
        p = self.planner
        if self.n_obs_steps != 1:
            raise ValueError(f"TD-MPC supports n_obs_steps=1 only, got {self.n_obs_steps}")
        if self.horizon < 1 or self.n_action_repeats < 1:
            raise ValueError(f"horizon ({self.horizon}) and n_action_repeats ({self.n_action_repeats}) must be >= 1")
        if n_action_steps > 1:
            if self.n_action_repeats != 1:
                raise ValueError(f"n_action_steps={n_action_steps} > 1 requires n_action_repeats=1, got {self.n_action_repeats}")
            if not self.use_mpc:
                raise ValueError(f"n_action_steps={n_action_steps} > 1 requires use_mpc=True")
            if n_action_steps > self.horizon:
                raise ValueError(f"n_action_steps ({n_action_steps}) must be <= horizon ({self.horizon})")
        if p.cem_iterations < 1:
            raise ValueError(f"cem_iterations must be >= 1, got {p.cem_iterations}")
        if not 1 <= p.n_elites <= p.n_gaussian_samples + p.n_pi_samples:
            raise ValueError(
                f"n_elites ({p.n_elites}) must be in [1, n_gaussian_samples + n_pi_samples = "
                f"{p.n_gaussian_samples + p.n_pi_samples}]"
            )
        if not 0.0 <= self.target_model_momentum <= 1.0:
            raise ValueError(f"target_model_momentum must be in [0, 1], got {self.target_model_momentum}")

    # ------------------------------------------------------------------ data contract
    @property
    def obs_keys(self) -> list[str]:
        """The observation keys the encoder reads (image, environment state, robot state)."""
        return [k for k in (self.image_key, self.env_key, self.state_key) if k is not None]

    @property
    def delta_indices(self) -> dict[str, list[int]]:
        """Observations ``[0 .. H]``, ``action`` and ``next.reward`` ``[0 .. H-1]`` (``H = horizon``)."""
        out = {k: list(range(self.horizon + 1)) for k in self.obs_keys}
        out[ACTION] = list(range(self.horizon))
        out[REWARD] = list(range(self.horizon))
        return out

    def encode(self, model: TOLD, obs: Mapping[str, Tensor]) -> Tensor:
        """Latent ``(*, latent_dim)`` of normalized observations ``obs`` (keys :attr:`obs_keys`, shared
        leading dims ``*``) with ``model`` (``self.model`` or ``self.model_target``)."""
        missing = [k for k in self.obs_keys if k not in obs]
        if missing:
            raise KeyError(f"observation lacks {missing}; TD-MPC needs {self.obs_keys}")
        return model.encode(
            image=obs[self.image_key] if self.image_key else None,
            state=obs[self.state_key] if self.state_key else None,
            env_state=obs[self.env_key] if self.env_key else None,
        )

    # ------------------------------------------------------------------ loss
    def _obs_valid(self, batch: Mapping[str, Any], steps: int, bsz: int, device) -> Tensor:
        """``(T, B)`` float mask, 1 where the observation is real (lerobot uses ``observation.state_is_pad``)."""
        for key in [self.state_key, *self.obs_keys]:
            if key is not None and f"{key}_is_pad" in batch:
                return (~batch[f"{key}_is_pad"].bool()).T.float()
        return torch.ones(steps, bsz, device=device)

    @staticmethod
    def _valid(batch: Mapping[str, Any], key: str, like: Tensor) -> Tensor:
        pad = batch.get(f"{key}_is_pad")
        return torch.ones_like(like) if pad is None else (~pad.bool()).T.to(like.dtype)

    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """TD-MPC/FOWM loss on a normalized batch (see the class docstring for the layout); returns
        ``(loss, {consistency_loss, reward_loss, Q_value_loss, V_value_loss, pi_loss, Q, V})``.

        Raises:
            KeyError: ``next.reward`` or an observation key is missing.
            ValueError: window lengths that do not match ``action``'s.
        """
        if REWARD not in batch:
            raise KeyError(f"TD-MPC's loss needs '{REWARD}' windows (B, horizon); batch has {sorted(batch)}")
        action = batch[ACTION].transpose(0, 1)  # (H, B, A)
        horizon, bsz = action.shape[:2]
        reward = batch[REWARD]
        if reward.dim() == 3 and reward.shape[-1] == 1:
            reward = reward.squeeze(-1)
        reward = reward.transpose(0, 1)  # (H, B)
        obs = {k: batch[k].transpose(0, 1) for k in self.obs_keys}  # (H+1, B, ...)
        for k, v in obs.items():
            if v.shape[0] != horizon + 1:
                raise ValueError(f"'{k}' window has {v.shape[0]} steps, expected horizon+1 = {horizon + 1}")
        if tuple(reward.shape) != (horizon, bsz):
            raise ValueError(f"'{REWARD}' window has shape {tuple(batch[REWARD].shape)}, expected ({bsz}, {horizon})")
        if self.image_key and self.max_random_shift_ratio > 0 and self.training:
            img = obs[self.image_key]
            obs[self.image_key] = random_shifts_aug(img.flatten(0, 1), self.max_random_shift_ratio).unflatten(0, img.shape[:2])
        current = {k: v[0] for k, v in obs.items()}
        nxt = {k: v[1:] for k, v in obs.items()}

        z0 = self.encode(self.model, current)
        zs, rewards_hat = [z0], []
        for t in range(horizon):
            z_next, r_hat = self.model.latent_dynamics_and_reward(zs[-1], action[t])
            zs.append(z_next)
            rewards_hat.append(r_hat)
        z_preds = torch.stack(zs)  # (H+1, B, L)
        reward_preds = torch.stack(rewards_hat)  # (H, B)
        q_preds = self.model.Qs(z_preds[:-1], action)  # (E, H, B)
        v_preds = self.model.V(z_preds[:-1])  # (H, B)

        with torch.no_grad():
            z_targets = self.encode(self.model_target, nxt)
            q_targets = reward + self.discount * self.model.V(self.encode(self.model, nxt))
            v_targets = self.model_target.Qs(z_preds[:-1].detach(), action, return_min=True)

        decay = torch.pow(self.temporal_decay_coeff, torch.arange(horizon, device=action.device)).unsqueeze(-1)
        obs_valid = self._obs_valid(batch, horizon + 1, bsz, action.device)
        first_valid = obs_valid[0] * self._valid(batch, ACTION, reward)  # (H, B): depends on o_0 and actions
        next_valid = obs_valid[1:]
        reward_valid = self._valid(batch, REWARD, reward)

        consistency = (decay * F.mse_loss(z_preds[1:], z_targets, reduction="none").mean(-1) * first_valid * next_valid).sum(0).mean()
        reward_loss = (decay * F.mse_loss(reward_preds, reward, reduction="none") * reward_valid * first_valid).sum(0).mean()
        q_err = F.mse_loss(q_preds, q_targets.unsqueeze(0).expand_as(q_preds), reduction="none").sum(0)
        q_loss = (decay * q_err * first_valid * reward_valid * next_valid).sum(0).mean()
        diff = v_targets - v_preds
        expectile = torch.where(diff > 0, self.expectile_weight, 1 - self.expectile_weight)
        v_loss = (decay * expectile * diff**2 * first_valid).sum(0).mean()

        z_fixed = z_preds.detach()
        with torch.no_grad():
            advantage = self.model_target.Qs(z_fixed[:-1], action, return_min=True) - self.model.V(z_fixed[:-1])
            weights = torch.exp(advantage * self.advantage_scaling).clamp(max=100.0)
        mse = F.mse_loss(self.model.pi(z_fixed[:-1]), action, reduction="none").sum(-1)  # (H, B)
        # As lerobot (and FOWM's code): a mean over time and batch, not a sum over time.
        pi_loss = (weights * mse * decay * first_valid).mean()

        c = self.coeffs
        loss = (
            c["consistency"] * consistency + c["reward"] * reward_loss + c["value"] * q_loss + c["value"] * v_loss
            + c["pi"] * pi_loss
        )
        info = {
            "consistency_loss": consistency.detach(), "reward_loss": reward_loss.detach(),
            "Q_value_loss": q_loss.detach(), "V_value_loss": v_loss.detach(), "pi_loss": pi_loss.detach(),
            "Q": q_preds.detach().mean(), "V": v_preds.detach().mean(),
        }
        return loss, info

    # ------------------------------------------------------------------ target network
    @torch.no_grad()
    def update_target(self) -> None:
        """EMA step of ``model_target`` towards ``model`` with ``target_model_momentum`` (lerobot's ``update``)."""
        ema_update(self.model_target, self.model, self.target_model_momentum)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Lightning's optimizer step followed by :meth:`update_target` (once per optimizer step, as lerobot)."""
        super().optimizer_step(*args, **kwargs)
        self.update_target()

    # ------------------------------------------------------------------ inference
    def _predict_chunk(self, batch: dict[str, Any]) -> Tensor:
        """Normalized single-frame observations (``(B, ...)``, or ``(B, 1, ...)``) -> clamped actions
        ``(B, horizon, A)`` with MPC, ``(B, 1, A)`` with ``pi``; MPC keeps its mean for warm starts."""
        frame_ndim = {k: len(self.features[k].shape) for k in self.obs_keys}
        obs = {}
        for k in self.obs_keys:
            if k not in batch:
                raise KeyError(f"observation lacks '{k}'; TD-MPC needs {self.obs_keys}")
            x = batch[k]
            obs[k] = x[:, -1] if x.dim() == frame_ndim[k] + 2 else x
        z = self.encode(self.model, obs)
        if self.use_mpc:
            actions, self._prev_mean = plan(self.model, z, self.planner, self._prev_mean)  # (H, B, A)
            actions = actions.transpose(0, 1)
        else:
            actions = self.model.pi(z).unsqueeze(1)
        return actions.clamp(-1, 1)

    @torch.no_grad()
    def select_action(self, observation: dict[str, Tensor]) -> Tensor:
        """Next action ``(B, A)`` (unnormalized) for one raw observation frame (states ``(B, D)``, camera
        ``(B, 3, H, W)`` in [0, 1]). When the queue is empty a plan is made; its first action is queued
        ``n_action_repeats`` times (or, with ``n_action_repeats=1``, its first ``n_action_steps`` actions)."""
        if not self._action_queue:
            chunk = self.predict_action_chunk(observation)  # (B, n, A)
            if self.n_action_repeats > 1:
                self._action_queue.extend([chunk[:, 0]] * self.n_action_repeats)
            else:
                self._action_queue.extend(chunk[:, : self.n_action_steps].unbind(1))
        return self._action_queue.popleft()

    def reset(self) -> None:
        """Clear the action queue and the planner's warm-start mean."""
        super().reset()
        self._prev_mean = None

    # ------------------------------------------------------------------ optimization
    def default_optimizer(self, params: Any) -> torch.optim.Optimizer:
        """Adam(lr=optimizer_lr), lerobot's TD-MPC preset."""
        return torch.optim.Adam(params, lr=self.optimizer_lr)
