"""The config's `[keys]` table checked against the app's bindings and turned into a Textual keymap.

config.py reads the table's shape (binding id -> key or list of keys); which binding ids exist is the
command table's fact (tui/commands.py) and each screen's BINDINGS, and which key names exist is Textual's, so
both are checked here. Keys clash only within one screen: the history screen's `s` is not the dashboard's.
cli.py runs the check for every command, so a config file is valid or invalid alike for `ccm-tui` and
`ccm-tui serve`; CcmApp applies the result with `App.set_keymap` when it mounts.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.keys import REPLACED_KEYS, Keys, key_to_character

from ccm_tui.config import ConfigError, Settings
from ccm_tui.tui.commands import bindings

MODIFIERS = ("ctrl", "shift", "alt", "meta", "super", "hyper")
_NAMED_KEYS = frozenset(key.value.rpartition("+")[2] for key in Keys)  # escape, f5, up, home, tab, ...


def key_problem(key: str) -> str | None:
    """Why Textual could never deliver `key` (e.g. "ctrl+x", "f5", "?", "question_mark"), or None."""
    *modifiers, name = key.split("+") if key != "+" else ["+"]
    unknown = [m for m in modifiers if m not in MODIFIERS]
    if unknown:
        return f"unknown modifier {unknown[0]!r} in {key!r} (modifiers: {', '.join(MODIFIERS)})"
    if len(name) == 1 and name.isprintable() and not name.isspace():
        return None
    if name in _NAMED_KEYS or _character(name) is not None:
        return None
    return f"unknown key name {name!r} in {key!r}"


def _character(key: str) -> str | None:
    """The character a key name stands for ("question_mark" -> "?", "slash" -> "/"), if any."""
    return key_to_character(REPLACED_KEYS.get(key, key))


def _same_key(key: str) -> str:
    """One spelling per key, for clash checks: "question_mark" and "?" are the same key."""
    return _character(key) or key


def binding_groups() -> dict[str, dict[str, str]]:
    """Binding id -> default keys, per screen that owns them (the dashboard's come from the command table)."""
    from ccm_tui.tui.screens.detail import RequestDetail
    from ccm_tui.tui.screens.help import HelpScreen
    from ccm_tui.tui.screens.history import HistoryScreen
    from ccm_tui.tui.screens.keys import KeyEntry
    from ccm_tui.tui.screens.provider import ProviderDetail
    from ccm_tui.tui.screens.sessions import SessionsScreen

    groups = {"dashboard": {binding.id: binding.key for binding in bindings() if binding.id}}
    for screen in (RequestDetail, HelpScreen, HistoryScreen, KeyEntry, ProviderDetail, SessionsScreen):
        own = [b for b in screen.BINDINGS if isinstance(b, Binding) and b.id]
        groups[screen.__name__] = {b.id: b.key for b in own if b.id}
    return groups


def keymap(settings: Settings) -> dict[str, str]:
    """Textual's keymap (binding id -> comma-separated keys) for `settings.keys`; ConfigError naming the file,
    the `keys.<id>` entry and the problem when an id is unknown, a key cannot exist or two bindings would
    share a key."""
    source = settings.source or "config"
    groups = binding_groups()
    defaults = {binding_id: key for group in groups.values() for binding_id, key in group.items()}

    def error(binding_id: str, problem: str) -> ConfigError:
        return ConfigError(f"{source}: keys.{binding_id}: {problem}")

    for binding_id, keys in settings.keys.items():
        if binding_id not in defaults:
            raise error(binding_id, f"unknown binding id (expected one of: {', '.join(defaults)})")
        for key in keys:
            if problem := key_problem(key):
                raise error(binding_id, problem)
    for group in groups.values():
        owner: dict[str, str] = {}  # key -> the binding id it triggers on this screen, once the table is applied
        for binding_id, default in group.items():
            for key in settings.keys.get(binding_id) or tuple(default.split(",")):
                other = owner.setdefault(_same_key(key), binding_id)
                if other != binding_id:
                    culprit, holder = (binding_id, other) if binding_id in settings.keys else (other, binding_id)
                    raise error(culprit, f"{key!r} is already bound to {holder}")
    return {binding_id: ",".join(keys) for binding_id, keys in settings.keys.items()}
