"""Test-only faithful mock upstreams (Bedrock, Vertex, Gemini, the Anthropic-protocol script).

`tests.mocks.upstreams` imports every mock, these and the ones demo mode ships in ccm_tui/demo/.
"""
