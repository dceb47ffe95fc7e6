"""Key entry: a masked input for one provider's API key, stored in the OS keyring from a worker thread.

Without a usable keyring backend the modal explains the alternatives (environment variable, keyrings.alt)
and offers to use the key for this session only. ccm-tui never writes a key to a file itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from ccm_tui import secrets
from ccm_tui.config import ProviderSettings


@dataclass(frozen=True)
class KeyResult:
    provider: str
    key: str
    stored: bool  # False = this session only


class KeyEntry(ModalScreen[KeyResult | None]):
    DEFAULT_CSS = """
    KeyEntry { align: center middle; }
    KeyEntry > Vertical {
        width: 80; height: auto; border: round $accent; background: $surface; padding: 1 2;
    }
    KeyEntry Label { width: 100%; margin-bottom: 1; }
    KeyEntry #key-status { height: auto; margin-top: 1; color: $text-muted; display: none; }
    KeyEntry #key-status.error { color: $error; }
    KeyEntry Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    KeyEntry Button { margin-left: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel-key")]

    def __init__(self, provider: ProviderSettings, source: str) -> None:
        super().__init__()
        self.provider = provider
        self.source = source

    def compose(self) -> ComposeResult:
        where = {
            "env": f"currently from ${self.provider.api_key_env}",
            "keyring": "currently from the OS keyring",
        }.get(self.source, "no key yet")
        with Vertical() as box:
            box.border_title = f"API key for {self.provider.name} ({self.provider.kind})"
            yield Label(
                f"Paste the key ({where}). Save stores it in the OS keyring, never in a file; "
                "Session only keeps it in memory until ccm-tui exits."
            )
            yield Input(placeholder="key", password=True, id="key-input")
            yield Static("", id="key-status")
            with Horizontal():
                yield Button("Session only", id="key-session", variant="default")
                yield Button("Cancel", id="key-cancel")
                yield Button("Save", id="key-save", variant="primary")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _key(self) -> str | None:
        key = self.query_one(Input).value.strip()
        if not key:
            self._status("Type or paste a key first.", error=True)
            return None
        return key

    def _status(self, message: str, *, error: bool = False) -> None:
        status = self.query_one("#key-status", Static)
        status.update(message)
        status.set_class(error, "error")
        status.display = bool(message)

    @on(Input.Submitted)
    @on(Button.Pressed, "#key-save")
    def save(self) -> None:
        key = self._key()
        if key is not None:
            self._status("Saving to the keyring…")
            self.store(key)

    @work(exclusive=True)
    async def store(self, key: str) -> None:
        try:
            await secrets.store_key(self.provider, key)
        except secrets.KeyringUnavailable as exc:
            self._status(f"{exc}\nPress 'Session only' to use the key until ccm-tui exits.", error=True)
            self.query_one("#key-session", Button).focus()  # the one way forward from here
            return
        self.dismiss(KeyResult(self.provider.name, key, stored=True))

    @on(Button.Pressed, "#key-session")
    def session_only(self) -> None:
        key = self._key()
        if key is not None:
            self.dismiss(KeyResult(self.provider.name, key, stored=False))

    @on(Button.Pressed, "#key-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
