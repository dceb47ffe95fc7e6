"""Steering around limits: the engine's one object for quota thresholds, key pools, session affinity, request
classes and the budget guard.

It holds the state (key pools, local usage counts, session pins, the budget lift) and calls the pure decisions
in quota.py, keys.py, affinity.py, classes.py, budget.py and plan.py. The engine asks it for a plan, for the key
of each attempt, and tells it what each attempt did; it publishes SteppedOff and BudgetChanged on the bus.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ccm_tui.config import BudgetAction, LocalLimits, ProviderSettings, Settings
from ccm_tui.core.contract import ApiKey, ProxyRequest, Route, UpstreamError
from ccm_tui.core.events import BudgetChanged, Event, SteppedOff, Usage
from ccm_tui.core.states import ProviderState
from ccm_tui.routing.affinity import AffinityBook
from ccm_tui.routing.budget import HOUR, BudgetState, SpendSource, budget_state, is_cheap, lift_until
from ccm_tui.routing.classes import apply_rule, rule_for, strategy_for
from ccm_tui.routing.keys import KeyPool, KeyState, is_key_failure
from ccm_tui.routing.limits import Failure, QuotaSnapshot
from ccm_tui.routing.outcome import RefusalKind, Refused
from ccm_tui.routing.plan import Candidate, Plan, plan_routes
from ccm_tui.routing.quota import Pressure, UsageCounter, pressure
from ccm_tui.routing.views import KeyView, Steer, SteeringView

KeyEntry = tuple[str, str, str]  # (label, source, secret)


class Steering:
    def __init__(
        self,
        settings: Settings,
        providers: Mapping[str, ProviderSettings],
        publish: Callable[[Event], None],
        spend: SpendSource | None = None,
    ) -> None:
        self.settings = settings.steering
        self.budget_settings = settings.budget
        self.routing = settings.routing
        self.publish = publish
        self.spend = spend
        self.providers = dict(providers)
        self.pools = {name: KeyPool(p.key_rotation) for name, p in self.providers.items()}
        self.usage = UsageCounter()
        self.affinity = AffinityBook(self.settings.affinity_sessions, self.settings.affinity_ttl)
        self.session_affinity = self.settings.session_affinity
        self._stepped: dict[str, str] = {}  # provider -> why it is stepped off (as last published)
        self._lifted_until: float | None = None
        self._budget_seen: tuple[object, ...] | None = None

    # --- quota ------------------------------------------------------------------------------------------------
    def threshold(self, provider: str) -> float:
        settings = self.providers.get(provider)
        own = settings.quota_threshold if settings else None
        return own if own is not None else self.settings.quota_threshold

    def _limits(self, route: Route) -> tuple[LocalLimits, LocalLimits | None]:
        settings = self.providers.get(route.provider)
        if settings is None:
            return LocalLimits(), None
        return settings.limits, settings.variant_limits.get(route.variant.key)

    def pressure(
        self, route: Route, snapshot: QuotaSnapshot | None, estimated_tokens: int, now: float
    ) -> Pressure | None:
        """The variant's pressure: live quota and the provider's local limits, and the variant's own limits."""
        threshold = self.threshold(route.provider)
        limits, variant_limits = self._limits(route)
        local = self.usage.counts(route.provider, None, now) if limits else None
        found = pressure(snapshot, local, limits, threshold, estimated_tokens, now)
        if variant_limits:
            counted = self.usage.counts(route.provider, route.variant.key, now)
            own = pressure(None, counted, variant_limits, threshold, estimated_tokens, now)
            found = _worse(found, own)
        return found

    def note_quota(self, route: Route, snapshot: QuotaSnapshot, now: float) -> QuotaSnapshot | None:
        """Record the headers' quota on the key that got them; the provider's quota is its best key's."""
        pool = self.pools.get(route.provider)
        key = pool.find(route.api_key.label) if pool is not None and route.api_key is not None else None
        if pool is None or key is None:
            return snapshot
        key.quota = snapshot
        return pool.best_quota(now) if len(pool) > 1 else snapshot

    # --- planning ---------------------------------------------------------------------------------------------
    def plan(self, request: ProxyRequest, candidates: Sequence[Candidate], strategy: str, now: float) -> Plan | Refused:
        """The routes for this request: budget guard, class rule, strategy, threshold and the session's pin."""
        budget = self.budget(now)
        if budget.restricts:
            if budget.action is BudgetAction.REFUSE:
                return Refused(RefusalKind.BUDGET, f"{budget.message}.", retryable=False)
            cheap = [c for c in candidates if is_cheap(c.stats.price_per_mtok, budget.cheap_usd_per_mtok)]
            if not cheap:
                price = f"${budget.cheap_usd_per_mtok:g}"
                message = (
                    f"{budget.message}, and no provider of {request.model!r} costs under {price} per million tokens."
                )
                return Refused(RefusalKind.BUDGET, message, retryable=False)
            candidates = cheap
        matched = rule_for(request.hints, self.settings)
        rule = matched[1] if matched else None
        candidates = apply_rule(candidates, rule)
        pin = self.affinity.get(request.hints.session_id, request.model, now) if self.session_affinity else None
        plan = plan_routes(candidates, strategy_for(rule, strategy), now, pin.route_key if pin else None)
        self._publish_steps(candidates, now)
        return plan

    def _publish_steps(self, candidates: Sequence[Candidate], now: float) -> None:
        seen: set[str] = set()
        for candidate in candidates:
            name = candidate.route.provider
            if name in seen:
                continue
            seen.add(name)
            found = candidate.pressure
            if found is not None and found.over:
                if name not in self._stepped:
                    self._stepped[name] = found.reason
                    self.publish(SteppedOff(name, True, found.reason, found.used, found.threshold, found.reset_at, now))
            elif name in self._stepped:
                del self._stepped[name]
                used = found.used if found else 0.0
                self.publish(SteppedOff(name, False, "", used, self.threshold(name), None, now))

    # --- keys -------------------------------------------------------------------------------------------------
    def set_keys(self, provider: str, keys: Sequence[KeyEntry]) -> None:
        self.pools[provider].replace(keys)

    def add_key(self, provider: str, label: str, source: str, secret: str) -> None:
        self.pools[provider].add(label, source, secret)

    def remove_key(self, provider: str, label: str) -> bool:
        return self.pools[provider].remove(label)

    def with_key(self, route: Route, now: float, tried: set[str] | None = None) -> Route | None:
        """`route` carrying the pool's next key for it; the route as is for a provider without a pool; None
        when every key of the pool has been tried for this request."""
        pool = self.pools.get(route.provider)
        if pool is None or not len(pool):
            return route if not tried else None
        tried = tried or set()
        threshold = self.threshold(route.provider)
        choice = next((k for k in pool.ordered(threshold, 0, now) if k.label not in tried), None)
        if choice is None:
            # Every key is cooling (the variant's own cool-down ended first): the one back soonest probes.
            waiting = [k for k in pool.keys if k.label not in tried and k.state(now) is ProviderState.COOLING]
            choice = min(waiting, key=lambda k: k.cooldown_until, default=None)
        if choice is None:
            return None
        pool.take(choice)
        return Route(route.provider, route.variant, ApiKey(choice.label, choice.secret))

    def key_failed(self, route: Route, failure: Failure, error: UpstreamError, now: float) -> bool:
        """Charge a key failure to the key when the pool has another usable key (True: try that next, the
        provider stays healthy); otherwise the provider takes the failure as without a pool (False)."""
        key = self._key(route)
        pool = self.pools.get(route.provider)
        if key is None or pool is None or not is_key_failure(failure, error):
            return False
        if not any(k is not key and k.state(now) is ProviderState.OK for k in pool.keys):
            return False
        routing = self.routing
        pool.fail(key, failure, routing.cooldown_base, routing.cooldown_max, routing.disable_seconds, now)
        return True

    def key_down(self, route: Route, now: float) -> bool:
        key = self._key(route)
        return key is not None and key.state(now) is not ProviderState.OK

    def _key(self, route: Route) -> KeyState | None:
        pool = self.pools.get(route.provider)
        if pool is None or route.api_key is None:
            return None
        return pool.find(route.api_key.label)

    # --- outcomes ---------------------------------------------------------------------------------------------
    def served(self, request: ProxyRequest, route: Route, usage: Usage, now: float) -> None:
        """A route answered: count it against local limits, pin the session, credit the key."""
        limits, variant_limits = self._limits(route)
        if limits or variant_limits:
            self.usage.add(route.provider, route.variant.key, usage.total_input_tokens + usage.output_tokens, now)
        self.affinity.record(request.hints.session_id, request.model, route, now)
        key = self._key(route)
        if key is not None:
            self.pools[route.provider].succeed(key)

    def clear_waits(self, provider: str) -> None:
        self.pools[provider].clear_waits()

    # --- budget -----------------------------------------------------------------------------------------------
    def budget(self, now: float, publish: bool = True) -> BudgetState:
        """The guard now; publishes BudgetChanged when it reaches a cap, is lifted, or is under again."""
        spent_today = self.spend.spent_today() if self.spend is not None else 0.0
        spent_hour = self.spend.spent(HOUR) if self.spend is not None else 0.0
        state = budget_state(self.budget_settings, spent_today, spent_hour, self._lifted_until, now)
        seen = (state.reached, state.active, state.lifted_until is not None)
        if not publish:
            return state
        if seen != self._budget_seen and (self._budget_seen is not None or state.reached is not None):
            self.publish(
                BudgetChanged(
                    window=state.reached.value if state.reached else None,
                    action=state.action.value,
                    active=state.active,
                    lifted=state.lifted_until is not None,
                    message=state.message,
                    at=now,
                )
            )
        self._budget_seen = seen
        return state

    def lift_budget(self, now: float) -> BudgetState:
        self._lifted_until = lift_until(now)
        return self.budget(now)

    # --- views ------------------------------------------------------------------------------------------------
    def view(self, quotas: Mapping[str, QuotaSnapshot | None], now: float) -> SteeringView:
        providers = {}
        for name, settings in self.providers.items():
            if name not in quotas:
                continue
            threshold = self.threshold(name)
            found = pressure(quotas[name], self.usage.counts(name, None, now), settings.limits, threshold, 0, now)
            counted = self.usage.counts(name, None, now)
            pool = self.pools[name]
            ordered = pool.ordered(threshold, 0, now)
            upcoming = ordered[0] if ordered else None
            keys = tuple(
                KeyView(
                    label=k.label,
                    source=k.source,
                    state=k.state(now),
                    until=k.until(now),
                    reason=k.reason,
                    quota=k.quota,
                    served=k.served,
                    next=k is upcoming,
                )
                for k in pool.keys
            )
            providers[name] = Steer(
                quota_threshold=threshold,
                stepped_off=found.reason if found is not None and found.over else None,
                quota_used=found.used if found else None,
                quota_window=found.window if found else None,
                quota_resets_at=found.reset_at if found else None,
                local_limits=settings.limits,
                local_requests_minute=counted.requests_minute,
                local_tokens_minute=counted.tokens_minute,
                local_requests_day=counted.requests_day,
                key_rotation=settings.key_rotation,
                keys=keys,
            )
        return SteeringView(
            quota_threshold=self.settings.quota_threshold,
            session_affinity=self.session_affinity,
            pins=self.affinity.pins(now),
            classes=self.settings.classes,
            agent_types=self.settings.agent_types,
            budget=self.budget(now, publish=False),
            providers=providers,
        )


def _worse(a: Pressure | None, b: Pressure | None) -> Pressure | None:
    if a is None or b is None:
        return a or b
    worst = a if a.used >= b.used else b
    shorts = [t for t in (a.short_until, b.short_until) if t is not None]
    return Pressure(worst.used, worst.window, worst.reset_at, worst.threshold, max(shorts) if shorts else None)
