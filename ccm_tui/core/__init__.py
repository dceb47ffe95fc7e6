"""The dependency-free core: contract types, events, enums and small pure helpers.

Everything here imports only the standard library, so every layer above (translate, providers, routing, proxy,
runtime, tui) can depend on it without pulling in HTTP clients or UI code.
"""
