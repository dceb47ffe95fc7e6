"""The one table of user commands: it feeds the key bindings, the help screen and the command palette."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Command:
    id: str  # binding id: users can remap it (Textual keymaps)
    keys: str
    action: str
    title: str
    help: str
    show: bool = True  # in the footer


COMMANDS: tuple[Command, ...] = (
    Command(
        "toggle-provider",
        "1,2,3,4,5,6,7,8,9",
        "toggle_provider_key",
        "Toggle provider 1-9",
        "Switch the provider in that row of the providers panel on or off; routing changes at once.",
        show=False,
    ),
    Command(
        "cycle-strategy",
        "s",
        "cycle_strategy",
        "Strategy",
        "Cycle the routing strategy: ordered, cost, latency, availability, balanced.",
    ),
    Command(
        "pause",
        "p",
        "toggle_pause",
        "Pause",
        "Pause or resume the proxy. While paused new requests get a 529 overloaded error; in-flight ones finish.",
    ),
    Command(
        "set-key",
        "k",
        "set_key",
        "API key",
        "Enter or replace the selected provider's API key (stored in the OS keyring, used at once).",
    ),
    Command(
        "request-detail",
        "enter",
        "request_detail",
        "Detail",
        "Show the selected request (attempts, failovers, causes, usage, cost, upstream ids), or, on a provider "
        "row, the provider (models and variants, recent errors, quota, key source, retry now).",
        show=False,
    ),
    Command(
        "sessions",
        "v",
        "sessions",
        "Sessions",
        "Claude Code sessions and their subagents: spend, tokens, requests, failovers, providers, last "
        "activity. Enter there filters the request stream by that session.",
    ),
    Command(
        "history",
        "h",
        "history",
        "History",
        "Spend and requests per day for the last 30 days, by provider, model or session.",
    ),
    Command(
        "clear-filter",
        "escape",
        "clear_filter",
        "All requests",
        "Show every request again after filtering the stream by a session.",
        show=False,
    ),
    Command(
        "lift-budget",
        "b",
        "lift_budget",
        "Lift budget",
        "Lift the budget guard ([budget]) for the rest of the day: requests route as if under every cap.",
        show=False,
    ),
    Command(
        "copy-env",
        "c",
        "copy_env",
        "Copy env",
        "Copy the environment line that points Claude Code here to the clipboard (OSC 52: works over SSH "
        "and tmux). Or run Claude Code with `ccm-tui claude`.",
    ),
    Command(
        "spend-panel",
        "g",
        "toggle_spend",
        "Spend",
        "Show or hide the spend panel (hidden by default under 100 columns).",
    ),
    Command(
        "focus-next",
        "tab",
        "focus_next",
        "Next panel",
        "Move focus between the providers and the requests.",
        show=False,
    ),
    Command("follow", "end", "follow", "Follow", "Jump to the newest request and follow the stream.", show=False),
    Command("help", "question_mark", "help", "Help", "Show every key and what it does."),
    Command("quit", "q,ctrl+q,ctrl+c", "quit", "Quit", "Drain in-flight streams, stop the proxy and exit."),
)


def bindings() -> list[Binding]:
    result: list[Binding] = []
    for command in COMMANDS:
        if command.id == "toggle-provider":
            result.extend(
                Binding(str(n), f"toggle_provider({n})", f"Toggle {n}", show=False, id=f"toggle-provider-{n}")
                for n in range(1, 10)
            )
            continue
        display = {"question_mark": "?", "q,ctrl+q,ctrl+c": "q", "escape": "esc"}.get(command.keys)
        result.append(
            Binding(command.keys, command.action, command.title, show=command.show, id=command.id, key_display=display)
        )
    return result


def key_label(command: Command) -> str:
    return {"question_mark": "?", "q,ctrl+q,ctrl+c": "q / ctrl+c", "1,2,3,4,5,6,7,8,9": "1 .. 9", "escape": "esc"}.get(
        command.keys, command.keys
    )
