"""The engine's read-only views and its control API: the only way the UI reads and changes routing.

A base class of routing.engine.Engine, kept apart so the request path stays readable; it touches only the
health book, the strategy, the pause flag and the holds (a change that may let a held request through wakes it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from ccm_tui.config import STRATEGIES
from ccm_tui.core.events import EventBus, ProviderChange, ProviderChanged, RequestFinished, RoutingChanged
from ccm_tui.core.states import AttemptOutcome, FailureKind, ProviderState
from ccm_tui.providers import Provider
from ccm_tui.routing.budget import BudgetState
from ccm_tui.routing.health import HealthBook
from ccm_tui.routing.hold import Holds
from ccm_tui.routing.limits import Failure, QuotaSnapshot
from ccm_tui.routing.steering import KeyEntry, Steering
from ccm_tui.routing.views import EngineView, ProviderView, engine_view, provider_view


class EngineControl:
    providers: dict[str, Provider]
    bus: EventBus
    clock: Callable[[], float]
    strategy: str
    paused: bool
    in_flight: int
    holds: Holds
    steer: Steering
    _health: HealthBook

    # --- views ------------------------------------------------------------------------------------------------
    def view(self) -> EngineView:
        """A frozen snapshot of everything /health, /v1/models and the TUI show."""
        now = self.clock()
        return engine_view(
            self.providers,
            self._health,
            strategy=self.strategy,
            paused=self.paused,
            in_flight=self.in_flight,
            now=now,
            steering=self.steer.view({name: self._health[name].quota for name in self.providers}, now),
            held=self.holds.snapshot(),
        )

    def provider_view(self, name: str) -> ProviderView:
        now = self.clock()
        steer = self.steer.view({name: self._health[name].quota}, now).providers.get(name)
        return provider_view(name, self.providers[name], self._health[name], now, steer)

    @property
    def provider_names(self) -> tuple[str, ...]:
        return tuple(self.providers)

    # --- control API ------------------------------------------------------------------------------------------
    @property
    def strategies(self) -> tuple[str, ...]:
        return STRATEGIES

    def set_strategy(self, name: str) -> None:
        if name not in STRATEGIES:
            raise ValueError(f"unknown strategy {name!r}")
        self.strategy = name
        self.bus.publish(RoutingChanged(self.strategy, self.paused))

    def cycle_strategy(self) -> str:
        index = STRATEGIES.index(self.strategy)
        self.set_strategy(STRATEGIES[(index + 1) % len(STRATEGIES)])
        return self.strategy

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.bus.publish(RoutingChanged(self.strategy, self.paused))

    def toggle_paused(self) -> bool:
        self.set_paused(not self.paused)
        return self.paused

    def set_enabled(self, name: str, enabled: bool) -> None:
        self._health.set_enabled(name, enabled)
        if enabled:
            self.bus.publish(ProviderChanged(name, None, ProviderState.OK, ProviderChange.ON, None, "switched on"))
            self.holds.wake()
        else:
            self.bus.publish(ProviderChanged(name, None, ProviderState.OFF, ProviderChange.OFF, None, "switched off"))

    def toggle(self, name: str) -> bool:
        enabled = not self._health[name].enabled
        self.set_enabled(name, enabled)
        return enabled

    def set_api_key(self, name: str, key: str | None, label: str = "session key") -> None:
        """This key (or none) replaces the provider's whole pool."""
        self.providers[name].set_api_key(key)
        self.steer.set_keys(name, [(label, "session", key)] if key else [])
        self._health.clear_disable(name)  # a new key deserves a fresh try
        self.bus.publish(ProviderChanged(name, None, ProviderState.OK, ProviderChange.KEY_SET, None, "API key set"))
        self.holds.wake()

    def retry_now(self, name: str) -> None:
        """End the provider's cool-downs and disable, and forget a quota that said nothing is left: the next
        request tries it first (as the recovery probe); its reply brings fresh quota headers."""
        self._health.clear_waits(name)
        self.steer.clear_waits(name)
        self._health.note_quota(name, None)
        self.bus.publish(ProviderChanged(name, None, ProviderState.OK, ProviderChange.RETRY_NOW, None, "retry now"))
        self.holds.wake()

    def replay(self, finished: RequestFinished) -> None:
        """Apply a finished request's attempts to provider health as the engine recorded them when it served
        them (replaying a recorded session, e.g. the TUI's snapshot scene); publishes nothing."""
        for attempt in finished.attempts:
            if attempt.outcome is AttemptOutcome.OK:
                self._health.record_success(
                    attempt.provider, attempt.variant, attempt.started_at, finished.ttfb, finished.usage
                )
            elif attempt.outcome is AttemptOutcome.COOLDOWN:
                failure = Failure(FailureKind.COOLDOWN, attempt.retry_after, attempt.reason)
                self._health.record_failure(attempt.provider, attempt.variant, failure, attempt.started_at)

    def note_quota(self, name: str, snapshot: QuotaSnapshot) -> None:
        """Set a provider's live quota as rate-limit headers would (replaying a recorded session)."""
        self._health.note_quota(name, snapshot)

    def set_api_keys(self, name: str, keys: Sequence[KeyEntry]) -> None:
        """The provider's key pool, (label, source, secret) per key in rotation order (runtime resolves them
        from api_key_env and the keyring); the adapter keeps the first as its own."""
        self.providers[name].set_api_key(keys[0][2] if keys else None)
        self.steer.set_keys(name, keys)

    def add_api_key(self, name: str, key: str, label: str, source: str = "session") -> None:
        """One more key for the provider's pool (e.g. typed into the key modal)."""
        if not self.providers[name].has_credentials:
            self.providers[name].set_api_key(key)
        self.steer.add_key(name, label, source, key)
        self._health.clear_disable(name)
        self.bus.publish(
            ProviderChanged(name, None, ProviderState.OK, ProviderChange.KEY_SET, None, f"key {label} added")
        )
        self.holds.wake()

    def remove_api_key(self, name: str, label: str) -> bool:
        """Drop one key from the provider's pool (by its label); True when it was there."""
        return self.steer.remove_key(name, label)

    def lift_budget(self) -> BudgetState:
        """Lift the budget guard for the rest of the day (the TUI's key for it)."""
        return self.steer.lift_budget(self.clock())

    def set_session_affinity(self, enabled: bool) -> None:
        self.steer.session_affinity = enabled

    def forget_sessions(self, session_id: str | None = None) -> None:
        """Drop one session's pins (or all): its next request is placed by the strategy."""
        self.steer.affinity.forget(session_id)

    async def aclose(self) -> None:
        await asyncio.gather(*(p.aclose() for p in self.providers.values()), return_exceptions=True)
