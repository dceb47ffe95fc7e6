"""ccm-tui as a user installs it: a fresh venv, `pip install <repo>` without the lock, then `ccm-tui serve`.

Catches what the dev venv hides: an import of an undeclared package, an extra a dependency needs (google-auth's
urllib3 transport needs `packaging`), a module that only imports with dev tools installed. The venv is clean (no
system site-packages) and made without pip; the host's pip installs into it (`pip --python`) from PyPI, reusing
pip's own HTTP and wheel cache so reruns take seconds. The installed `ccm-tui serve` then answers one request
per provider kind, each sent to its faithful loopback mock under its own model name.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import anthropic
import pytest

from tests.mocks.upstreams import AnthropicMock, BedrockMock, GeminiMock, OpenAIMock, VertexMock

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parent.parent
# What a checkout holds beyond the source (the .gitignore list and the git directory): never part of an install.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", "*.egg-info"
)
PIP_TIMEOUT = 600  # a cold cache downloads ~45 wheels; a warm one installs in well under a minute
# Captured at import, before the autouse fixture points HOME into tmp_path: pip must find the user's cache.
HOST_ENVIRON = dict(os.environ)
BANNER = re.compile(r"proxy on (http://127\.0\.0\.1:\d+)")

# Each provider answers exactly one requested name, so each request can only go to its own mock.
BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
VERTEX_MODEL = "claude-sonnet-4-5@20250929"
ROUTES = {
    "anthropic": ("install-anthropic", "Hello from the Anthropic mock."),
    "openai": ("install-openai", "Hello from the OpenAI mock."),
    "bedrock": ("install-bedrock", "Hello from the Bedrock mock. How can I help?"),
    "vertex": ("install-vertex", "Hello from the Vertex mock. How can I help?"),
    "gemini": ("install-gemini", "Hello from the Gemini mock. How can I help?"),
}


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def ccm_tui(self) -> Path:
        return self.root / "bin" / "ccm-tui"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    base = tmp_path_factory.mktemp("install")
    # pip builds in the source tree (build/, *.egg-info): build from a copy, never from the checkout itself.
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE, symlinks=True)
    env = Venv(base / "venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env.root)], check=True, timeout=60)
    pip = [sys.executable, "-m", "pip", "--python", str(env.python)]
    try:
        subprocess.run(
            # --no-compile: the interpreter compiles only what it imports, not all of botocore and textual.
            [*pip, "install", "--quiet", "--no-compile", str(source)],
            check=True,
            timeout=PIP_TIMEOUT,
            env=HOST_ENVIRON,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"pip install of the project failed:\n{exc.stdout[-3000:]}\n{exc.stderr[-3000:]}")
    except subprocess.TimeoutExpired:
        pytest.fail(f"pip install of the project took longer than {PIP_TIMEOUT} s")
    yield env


def _isolated_python(env: Venv, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # -I: no PYTHONPATH, no user site, no current directory on sys.path (the checkout's ccm_tui stays out).
    return subprocess.run(
        [str(env.python), "-I", "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


IMPORT_EVERY_MODULE = """
import importlib, json, pkgutil, traceback
import ccm_tui
failures, names = {}, []
for module in pkgutil.walk_packages(ccm_tui.__path__, "ccm_tui."):
    if module.name == "ccm_tui.__main__":
        continue  # running it is starting the program; `ccm-tui serve` below covers it
    names.append(module.name)
    try:
        importlib.import_module(module.name)
    except BaseException:
        failures[module.name] = traceback.format_exc(limit=3)
print(json.dumps({"file": ccm_tui.__file__, "names": names, "failures": failures}))
"""


def test_every_module_of_the_installed_package_imports_with_only_runtime_dependencies(venv, tmp_path) -> None:
    result = _isolated_python(venv, IMPORT_EVERY_MODULE, tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert Path(report["file"]).is_relative_to(venv.root)  # the installed copy, not the checkout
    assert report["failures"] == {}
    source_modules = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "ccm_tui").rglob("*.py")
    } - {"ccm_tui", "ccm_tui.__main__"}
    assert set(report["names"]) == source_modules  # every module was installed, and so imported


def _third_party_imports() -> set[str]:
    """Top-level names of every absolute import in the package's source that is neither stdlib nor ccm_tui."""
    names = set()
    for path in (ROOT / "ccm_tui").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"ccm_tui", "__future__"}


DECLARED_AND_PROVIDERS = """
import json, re
from importlib.metadata import packages_distributions, requires
declared = [r for r in requires("ccm-tui") if "extra ==" not in r]
print(json.dumps({
    "declared": [re.match(r"[A-Za-z0-9._-]+", r).group(0) for r in declared],
    "providers": packages_distributions(),
}))
"""


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_every_third_party_import_is_a_declared_dependency(venv, tmp_path) -> None:
    """An import satisfied only transitively (aiohttp through httpx-aiohttp) breaks when that dependency changes."""
    result = _isolated_python(venv, DECLARED_AND_PROVIDERS, tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    declared = {_normalized(name) for name in report["declared"]}
    undeclared = {
        name: report["providers"].get(name, [])
        for name in _third_party_imports()
        if not declared & {_normalized(d) for d in report["providers"].get(name, [])}
    }
    assert undeclared == {}


def test_no_dev_dependency_is_installed(venv, tmp_path) -> None:
    """The import tests prove something only if the venv lacks the dev tools the suite itself uses."""
    code = "import importlib.util, json; print(json.dumps([m for m in ('pytest', 'anthropic', 'openai', 'psutil')"
    code += " if importlib.util.find_spec(m)]))"
    result = _isolated_python(venv, code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


@dataclass
class Upstreams:
    anthropic: AnthropicMock
    openai: OpenAIMock
    bedrock: BedrockMock
    vertex: VertexMock
    gemini: GeminiMock


def _config(mocks: Upstreams, service_account: Path) -> str:
    name = {kind: model for kind, (model, _) in ROUTES.items()}
    return f"""
[[providers]]
name = "anthropic-mock"
kind = "anthropic"
base_url = "{mocks.anthropic.url}"
api_key_env = "UPSTREAM_KEY"
[providers.models]
"{name["anthropic"]}" = "claude-sonnet-4-5"

[[providers]]
name = "openai-mock"
kind = "openai"
base_url = "{mocks.openai.url}"
api_key_env = "UPSTREAM_KEY"
[providers.models]
"{name["openai"]}" = "gpt-5"

[[providers]]
name = "bedrock-mock"
kind = "bedrock"
base_url = "{mocks.bedrock.url}"
region = "us-west-2"
[providers.models]
"{name["bedrock"]}" = "{BEDROCK_MODEL}"

[[providers]]
name = "vertex-mock"
kind = "vertex"
base_url = "{mocks.vertex.url}"
region = "us-east5"
project = "{VertexMock.project}"
credentials_file = "{service_account}"
[providers.models]
"{name["vertex"]}" = "{VERTEX_MODEL}"

[[providers]]
name = "gemini-mock"
kind = "gemini"
base_url = "{mocks.gemini.url}"
api_key_env = "GEMINI_API_KEY"
[providers.models]
"{name["gemini"]}" = "gemini-2.5-pro"
"""


@pytest.fixture
async def upstreams() -> AsyncIterator[Upstreams]:
    async with AsyncExitStack() as stack:
        mocks = Upstreams(
            anthropic=await stack.enter_async_context(AnthropicMock()),
            openai=await stack.enter_async_context(OpenAIMock()),
            bedrock=await stack.enter_async_context(BedrockMock()),
            vertex=await stack.enter_async_context(VertexMock()),
            gemini=await stack.enter_async_context(GeminiMock()),
        )
        mocks.anthropic.text = ROUTES["anthropic"][1]
        mocks.openai.text = ROUTES["openai"][1]
        yield mocks


def _serve_environ(tmp_path: Path) -> dict[str, str]:
    """Only what the installed program needs: keys, static AWS credentials, a private HOME, no host keyring."""
    return {
        "PATH": HOST_ENVIRON.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "UPSTREAM_KEY": "test-upstream-key",
        "GEMINI_API_KEY": GeminiMock.api_key,
        "AWS_ACCESS_KEY_ID": BedrockMock.access_key,
        "AWS_SECRET_ACCESS_KEY": BedrockMock.secret_key,
        "AWS_CONFIG_FILE": str(tmp_path / "missing-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "missing-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


async def test_installed_serve_answers_through_every_provider_kind(venv, upstreams, tmp_path) -> None:
    sa = upstreams.vertex.write_service_account(tmp_path / "service-account.json")
    config = tmp_path / "config.toml"
    config.write_text(_config(upstreams, sa))
    process = await asyncio.create_subprocess_exec(
        str(venv.ccm_tui),
        "serve",
        "--config",
        str(config),
        "--port",
        "0",
        cwd=tmp_path,
        env=_serve_environ(tmp_path),
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        base = None
        startup = ""
        while base is None:
            line = (await asyncio.wait_for(process.stderr.readline(), timeout=60)).decode()
            assert line, f"the installed ccm-tui exited before listening:\n{startup}"
            startup += line
            if match := BANNER.search(line):
                base = match.group(1)
        client = anthropic.AsyncAnthropic(base_url=base, api_key="dummy", max_retries=0, timeout=60)
        answers = {}
        for kind, (model, _) in ROUTES.items():
            async with client.messages.stream(
                model=model, max_tokens=64, messages=[{"role": "user", "content": "Say hello."}]
            ) as stream:
                message = await stream.get_final_message()
            answers[kind] = "".join(block.text for block in message.content if block.type == "text")
    finally:
        if process.returncode is None:
            process.terminate()
        code = await asyncio.wait_for(process.wait(), timeout=30)
    rest = (await process.stderr.read()).decode()
    assert answers == {kind: text for kind, (_, text) in ROUTES.items()}
    assert code == 0 and "Traceback" not in startup + rest
    # Each mock saw exactly its own request, in its own wire format, for the model its provider maps to.
    assert [r.json()["model"] for r in upstreams.anthropic.requests] == ["claude-sonnet-4-5"]
    assert [r.json()["model"] for r in upstreams.openai.requests] == ["gpt-5"]
    assert [r.path for r in upstreams.bedrock.requests] == [f"/model/{BEDROCK_MODEL}/invoke-with-response-stream"]
    assert [r.path.rsplit("/", 1)[-1] for r in upstreams.vertex.requests if "publishers" in r.path] == [
        f"{VERTEX_MODEL}:streamRawPredict"
    ]
    assert [r.path.rsplit("/", 1)[-1] for r in upstreams.gemini.requests] == ["gemini-2.5-pro:streamGenerateContent"]
