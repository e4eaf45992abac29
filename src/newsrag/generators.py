"""Generators: one protocol, four backends.

- ``extractive`` (default, offline): answers and summaries made only of sentences
  that stand in the archive (see extractive.py).
- ``transformers``: any Hugging Face seq2seq or chat model, by id or local path.
- ``openai``: any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama).
- ``llamacpp``: a local GGUF file run in-process by llama-cpp-python.

The model backends share ChatGenerator: prompts from ``prompts/``, passages packed
to the model's window, map-reduce for summaries larger than the window, and text
streamed as it is produced. Citations are not the model's word: answering.py
matches every sentence back to the passages afterwards.

A model backend's stream is text pieces ending with one ``Finish`` (why the model
stopped: ``length`` means it was cut at max_new_tokens). Anything that keeps a
backend from answering (no connection, an HTTP error, an empty or cut-off
stream, a prompt over the window, a timeout) is a GenerationError with one line
naming the backend and the cause, never an empty answer: an empty answer would
read as "the archive has nothing", which is false.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Protocol

from . import prompts
from .prompts import Passage
from .remote import http_error_detail, json_object, message, request
from .text import one_line

if TYPE_CHECKING:
    from .settings import Settings

# The window assumed when neither the model nor the settings say (common local
# servers run 2k-8k; guessing high makes them fail, guessing low only packs less).
FALLBACK_WINDOW = 4096
# In-process llama.cpp allocates its window: the model's own, capped here unless set higher.
LOCAL_WINDOW = 8192
# The chat template's own tokens (role markers, turn ends) that the packing does not count.
TEMPLATE_SLACK = 32
# Messages by which servers and llama.cpp say a prompt did not fit the window.
_OVERFLOW = re.compile(r"context (?:window|length|size)|maximum context|exceeds? (?:the )?(?:max|context)|"
                       r"too many tokens|n_ctx|prompt is too long|Requested tokens", re.I)

BUSY_WAIT_S = 300  # how long an in-process GGUF answer waits for the one before it


class GeneratorError(RuntimeError):
    """A generator cannot be set up: an unknown kind, a missing model, URL or package."""


class GenerationError(GeneratorError):
    """A backend failed while generating; ``str()`` is one line naming the backend and the cause."""

    def __init__(self, backend: str, cause: str, *, timeout: bool = False, overflow: bool = False):
        self.backend, self.cause, self.timeout, self.overflow = backend, one_line(cause), timeout, overflow
        super().__init__(one_line(f"generation failed ({backend}): {cause}"))


@dataclass(frozen=True)
class Finish:
    """The last item of a model's stream: why it stopped (``stop``, ``length``, …)."""

    reason: str

    @property
    def truncated(self) -> bool:
        return self.reason == "length"


def collect(items: Iterable[str | Finish]) -> tuple[str, bool]:
    """A whole stream: its text, and whether the model was cut off at max_new_tokens."""
    text, truncated = [], False
    for item in items:
        if isinstance(item, Finish):
            truncated = item.truncated
        else:
            text.append(item)
    return "".join(text), truncated


class Generator(Protocol):
    name: str

    def answer(self, question: str, passages: list[Passage], *, today: str) -> Iterator[str | Finish]: ...

    def summarize(self, topic: str, passages: list[Passage], *, period: str,
                  budget_chars: int) -> Iterator[str | Finish]: ...


class ChatGenerator:
    """What the model backends share; subclasses provide stream(), count_tokens() and model_window()."""

    name = "chat"

    def __init__(self, prompts_dir: str | None = None, max_new_tokens: int = 512,
                 context_tokens: int | None = None):
        self.prompts_dir = prompts_dir
        self.max_new_tokens = max_new_tokens
        self.window_setting = context_tokens  # --context-tokens: caps what the model reports

    # -- backend-specific
    @property
    def backend(self) -> str:
        """How errors name this backend."""
        return self.name

    def stream(self, messages: list[dict]) -> Iterator[str | Finish]:
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        return len(text)  # a CJK character is about one token for Chinese-capable models

    def model_window(self) -> int | None:
        """The window the model itself reports, when it can say."""
        return None

    # -- shared
    @property
    def context_tokens(self) -> int:
        """The window prompts are packed for: the model's own, the setting, the smaller of both."""
        known = [w for w in (self.model_window(), self.window_setting) if w]
        return min(known) if known else FALLBACK_WINDOW

    @context_tokens.setter
    def context_tokens(self, value: int | None) -> None:
        self.window_setting = value

    def fail(self, cause: str, **kind) -> GenerationError:
        return GenerationError(self.backend, cause, **kind)

    def refused(self, message: str) -> GenerationError:
        """The backend's own error message, recognised as a window overflow where it is one."""
        if _OVERFLOW.search(message):
            return self.fail(f"the prompt does not fit the model's context window ({message}); read fewer "
                             f"passages (-k) or set --context-tokens to the model's window", overflow=True)
        return self.fail(message)

    def _budget(self, template: dict[str, str], **values: str) -> int:
        """Tokens left for passages once the prompt itself and the answer are reserved."""
        fixed = sum(self.count_tokens(m["content"]) for m in prompts.render(template, [], **values))
        return self.context_tokens - fixed - self.max_new_tokens - TEMPLATE_SLACK

    def _pack(self, passages: list[Passage], budget: int) -> list[Passage]:
        """Passages in order while they fit; the first one is cut to fit rather than dropped."""
        out, used = [], 0
        for p in passages:
            cost = self.count_tokens(prompts.fence(p)) + 2
            if used + cost > budget:
                if not out and budget > 64:
                    keep = max(1, int(len(p.text) * (budget - 64) / cost))
                    out.append(Passage(p.n, p.article_id, p.title, p.date, p.source, p.text[:keep], p.start, p.score))
                break
            out.append(p)
            used += cost
        return out

    def _pack_some(self, passages: list[Passage], budget: int) -> list[Passage]:
        fit = self._pack(passages, budget)
        if passages and not fit:
            raise self.fail(f"the model's window ({self.context_tokens} tokens) leaves no room for a passage "
                            f"after the prompt and {self.max_new_tokens} new tokens", overflow=True)
        return fit

    def _generate(self, messages: list[dict]) -> Iterator[str | Finish]:
        """stream(), held to its contract: some text, then exactly one Finish."""
        wrote, finish = False, Finish("stop")
        for item in self.stream(messages):
            if isinstance(item, Finish):
                finish = item
            elif item:
                wrote = wrote or bool(item.strip())
                yield item
        if not wrote:
            raise self.fail(f"the model returned no text (finish_reason {finish.reason})")
        yield finish

    def scaffold(self, kind: str, passages: list[Passage], **values: str) -> str:
        """The prompt as the model saw it minus the articles' own text: words a model may copy
        that no article says (instructions, the question, the numbered block headers)."""
        return prompts.scaffold(prompts.load(kind, self.prompts_dir), passages, **values)

    def answer(self, question: str, passages: list[Passage], *, today: str) -> Iterator[str | Finish]:
        template = prompts.load("answer", self.prompts_dir)
        fit = self._pack_some(passages, self._budget(template, question=question, today=today))
        yield from self._generate(prompts.render(template, fit, question=question, today=today))

    def summarize(self, topic: str, passages: list[Passage], *, period: str,
                  budget_chars: int, prompt: str = "briefing") -> Iterator[str | Finish]:
        """A summary of the passages: a briefing theme's, or with ``prompt="summary"`` one article's."""
        template = prompts.load(prompt, self.prompts_dir)
        values = dict(topic=topic, period=period, budget_chars=str(budget_chars))
        budget = self._budget(template, **values)
        groups: list[list[Passage]] = []
        rest = list(passages)
        while rest:
            fit = self._pack_some(rest, budget)
            groups.append(fit)
            rest = rest[len(fit):]
        if len(groups) == 1:
            yield from self._generate(prompts.render(template, groups[0], **values))
            return
        # Map: one summary per window-sized group; reduce: a summary of those summaries.
        partial = []
        for i, group in enumerate(groups, 1):
            text, _ = collect(self._generate(prompts.render(template, group, **values)))
            partial.append(Passage(i, "", f"{topic}（第{i}部分）", None, "", text))
        yield from self.summarize(topic, partial, period=period, budget_chars=budget_chars, prompt=prompt)


class TransformersGenerator(ChatGenerator):
    """A Hugging Face model by id or local folder: chat LMs (Qwen2.5-Instruct) and seq2seq (mT5)."""

    def __init__(self, model: str, device: str | None = None, prompts_dir: str | None = None,
                 max_new_tokens: int = 512, context_tokens: int | None = None):
        super().__init__(prompts_dir, max_new_tokens, context_tokens)
        self.name = f"transformers:{model}"
        self.model_name = model
        self._device = device
        self._model = self._tok = None
        self._window: int | None = None

    def _load(self):
        if self._model is not None:
            return
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        try:
            config = AutoConfig.from_pretrained(self.model_name)
            cls = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
            device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
            self._tok = AutoTokenizer.from_pretrained(self.model_name)
            self._model = cls.from_pretrained(self.model_name, dtype=dtype).to(device).eval()
        except (OSError, ValueError) as e:
            raise self.fail(f"cannot load generation model {self.model_name!r}: {str(e).splitlines()[0]}") from e
        window = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        if not window and config.is_encoder_decoder:
            window = 512 if getattr(config, "relative_attention_num_buckets", None) else 1024
        self._window = min(int(window or 2048), 32768)

    def model_window(self) -> int | None:
        self._load()
        return self._window

    def count_tokens(self, text: str) -> int:
        self._load()
        return len(self._tok(text, add_special_tokens=False)["input_ids"])

    def _inputs(self, messages: list[dict]):
        tok = self._tok
        if not self._model.config.is_encoder_decoder and getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)
            return {k: v.to(self._model.device) for k, v in ids.items()}
        text = "\n\n".join(m["content"] for m in messages)
        enc = tok(text, return_tensors="pt", truncation=True, max_length=self.context_tokens)
        return {k: v.to(self._model.device) for k, v in enc.items()}

    def _finish(self, inputs, ids) -> Finish:
        """``length`` when the model used every new token without writing an end-of-sequence."""
        prompt = 0 if self._model.config.is_encoder_decoder else inputs["input_ids"].shape[-1]
        eos = self._model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, (list, tuple)) else [eos])
        ended = int(ids[0, -1]) in eos
        return Finish("length" if ids.shape[-1] - prompt >= self.max_new_tokens and not ended else "stop")

    def stream(self, messages: list[dict]) -> Iterator[str | Finish]:
        from transformers import TextIteratorStreamer

        self._load()
        inputs = self._inputs(messages)
        streamer = TextIteratorStreamer(self._tok, skip_prompt=not self._model.config.is_encoder_decoder,
                                        skip_special_tokens=True)
        out: dict = {}

        def run():
            try:
                out["ids"] = self._model.generate(
                    **inputs, streamer=streamer, max_new_tokens=self.max_new_tokens, do_sample=False,
                    pad_token_id=self._tok.pad_token_id or self._tok.eos_token_id)
            except BaseException as e:  # surfaced in the caller's thread below
                out["error"] = e
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        yield from streamer
        thread.join()
        if "error" in out:
            raise self.refused(str(out["error"])) from out["error"]
        yield self._finish(inputs, out["ids"])


class OpenAIGenerator(ChatGenerator):
    """An OpenAI-compatible /chat/completions endpoint, streamed as server-sent events.

    The window is asked of the server where it says (llama.cpp's ``/props``, vLLM's
    ``max_model_len`` in ``/v1/models``), and tokens are counted by the server's own
    tokenizer where it has an endpoint for it (llama-cpp-python, llama.cpp, vLLM).
    """

    PROBE_TIMEOUT = 5.0
    PROBE_BACKOFF = 30.0  # seconds without probes after the server could not be reached
    # Token-counting routes, relative to the server root: llama-cpp-python's, then llama.cpp's and vLLM's.
    TOKENIZE_ROUTES = ("/extras/tokenize/count", "/tokenize")

    def __init__(self, model: str, base_url: str, api_key: str | None = None, prompts_dir: str | None = None,
                 max_new_tokens: int = 512, context_tokens: int | None = None, timeout: float = 120.0):
        super().__init__(prompts_dir, max_new_tokens, context_tokens)
        if not base_url:
            raise GeneratorError("the openai generator needs a base URL (--base-url or NEWSRAG_BASE_URL)")
        self.name = f"openai:{model}"
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.root = re.sub(r"/v1$", "", self.base_url)
        self.api_key = api_key
        self.timeout = timeout
        self._window: int | None = None
        self._window_known = False
        self._tokenize_route: str | None = None  # "" once no route has answered
        self._unreachable_until = 0.0

    @property
    def backend(self) -> str:
        return f"{self.name} at {self.base_url}"

    # -- talking to the server
    def _request(self, url: str, body: dict | None = None, timeout: float | None = None):
        return request(url, body, self.api_key, timeout or self.timeout)

    def _probe(self, url: str, body: dict | None = None) -> dict | None:
        """A JSON answer from an optional route; None when the server has no such route.

        Raises ConnectionError when the server cannot be reached, and at once for a while
        after that: a hung server would otherwise cost a probe timeout per passage packed.
        """
        if time.monotonic() < self._unreachable_until:
            raise ConnectionError("unreachable a moment ago")
        try:
            with self._request(url, body, self.PROBE_TIMEOUT) as resp:
                data = json.loads(resp.read(1_000_000))
                return data if isinstance(data, dict) else None
        except urllib.error.HTTPError:
            return None
        except (urllib.error.URLError, OSError) as e:
            self._unreachable_until = time.monotonic() + self.PROBE_BACKOFF
            raise ConnectionError(str(e)) from None
        except (ValueError, http.client.HTTPException):
            return None

    def model_window(self) -> int | None:
        if not self._window_known:
            try:
                self._window = self._probe_window()
                self._window_known = True
            except ConnectionError:
                return None  # the request itself will say the server cannot be reached
        return self._window

    def _probe_window(self) -> int | None:
        props = self._probe(self.root + "/props") or {}
        n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
        if n_ctx:
            return int(n_ctx)
        listed = (self._probe(self.base_url + "/models") or {}).get("data") or []
        sized = [m for m in listed if isinstance(m, dict) and m.get("max_model_len")]
        chosen = next((m for m in sized if m.get("id") == self.model), sized[0] if sized else None)
        return int(chosen["max_model_len"]) if chosen else None

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        routes = self.TOKENIZE_ROUTES if self._tokenize_route is None else (self._tokenize_route,)
        for route in filter(None, routes):
            try:
                data = self._probe(self.root + route, {"input": text, "content": text, "prompt": text,
                                                       "model": self.model, "add_special_tokens": False})
            except ConnectionError:
                break
            count = (data or {}).get("count")
            count = count if isinstance(count, int) else len((data or {}).get("tokens") or []) or None
            if count is not None:
                self._tokenize_route = route
                return count
        else:
            self._tokenize_route = ""  # the server counts nothing for us: estimate from now on
        return super().count_tokens(text)

    # -- generating
    def stream(self, messages: list[dict]) -> Iterator[str | Finish]:
        body = {"model": self.model, "messages": messages, "stream": True, "temperature": 0,
                "max_tokens": self.max_new_tokens}
        try:
            resp = self._request(f"{self.base_url}/chat/completions", body)
        except urllib.error.HTTPError as e:
            raise self._http_error(e) from None
        except (urllib.error.URLError, OSError) as e:
            raise self._connection_error(e) from None
        with resp:
            if resp.headers.get_content_type() == "application/json":
                yield from self._whole(resp)  # a server that does not stream sends one JSON body
            else:
                yield from self._events(resp)

    def _events(self, resp) -> Iterator[str | Finish]:
        done, finish, chars = False, None, 0
        try:
            for raw in resp:
                line = raw.decode("utf-8", "replace").strip()
                if line.startswith("error:"):
                    raise self.refused(message(line[6:].strip()))
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                event = json_object(data)
                if event is None or not isinstance(event.get("choices", []), list):
                    raise self.fail(f"the server sent an event that is not a chat chunk: {data[:80]}")
                if "error" in event:
                    raise self.refused(message(event["error"]))
                for choice in event.get("choices") or []:  # a usage-only chunk has none
                    piece = (choice.get("delta") or {}).get("content") or (choice.get("message") or {}).get("content")
                    if piece:
                        chars += len(piece)
                        yield piece
                    finish = choice.get("finish_reason") or finish
        except (TimeoutError, socket.timeout):
            raise self.fail(f"no data for {self.timeout:g} s after {chars} characters", timeout=True) from None
        except (OSError, http.client.HTTPException) as e:
            raise self.fail(f"the connection broke after {chars} characters ({e or type(e).__name__})") from None
        # A finish_reason is the model's own end; [DONE] only the transport's. Without either
        # the stream was cut, and what came is not the whole answer.
        if not (done or finish):
            if chars:
                raise self.fail(f"the stream was cut off after {chars} characters (no finish_reason, no [DONE])")
            raise self.fail("the server sent HTTP 200 with no events and no [DONE] (llama.cpp servers do this "
                            f"when the prompt exceeds their window; the prompt was packed for "
                            f"{self.context_tokens} tokens: set --context-tokens to the server's n_ctx)",
                            overflow=True)
        yield Finish(finish or "stop")

    def _whole(self, resp) -> Iterator[str | Finish]:
        try:
            data = json_object(resp.read().decode("utf-8", "replace")) or {}
        except (TimeoutError, socket.timeout):
            raise self.fail(f"no answer within {self.timeout:g} s", timeout=True) from None
        if "error" in data:
            raise self.refused(message(data["error"]))
        choice = (data.get("choices") or [{}])[0]
        text = (choice.get("message") or {}).get("content")
        if text:
            yield text
        yield Finish(choice.get("finish_reason") or "stop")

    def _http_error(self, e: urllib.error.HTTPError) -> GenerationError:
        error = self.refused(f"HTTP {e.code}: {http_error_detail(e)}")
        error.timeout = e.code == 504
        return error

    def _connection_error(self, e: BaseException) -> GenerationError:
        reason = getattr(e, "reason", e)
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return self.fail(f"no answer within {self.timeout:g} s", timeout=True)
        if isinstance(reason, ConnectionRefusedError):
            reason = "connection refused"
        return self.fail(f"cannot reach {self.base_url}: {reason}")


class LlamaCppGenerator(ChatGenerator):
    """A GGUF file run in-process by llama-cpp-python (``pip install 'newsrag[llamacpp]'``).

    The chat template comes from the file, or from ``chat_format`` (a llama-cpp-python
    format name such as ``gemma`` or ``chatml``) when the file has none or it should be
    overridden. The window is the model's trained one, capped at LOCAL_WINDOW (it is
    allocated up front) unless --context-tokens says otherwise.
    """

    def __init__(self, model: str, chat_format: str | None = None, prompts_dir: str | None = None,
                 max_new_tokens: int = 512, context_tokens: int | None = None):
        super().__init__(prompts_dir, max_new_tokens, context_tokens)
        self.name = f"llamacpp:{Path(model).name}"
        self.path = model
        self.chat_format = chat_format
        self._llm = None
        self._lock = threading.Lock()  # one llama context: one generation at a time

    def _load(self):
        if self._llm is not None:
            return self._llm
        if not Path(self.path).is_file():
            raise self.fail(f"cannot load generation model {self.path!r}: no such file")
        try:
            import llama_cpp
        except ImportError:
            raise GeneratorError("the llamacpp generator needs llama-cpp-python: "
                                 "pip install 'newsrag[llamacpp]'") from None
        if self.chat_format:
            try:
                llama_cpp.llama_chat_format.get_chat_completion_handler(self.chat_format)
            except Exception:  # LlamaChatCompletionHandlerNotFoundException derives from Exception only
                raise GeneratorError(f"unknown chat format {self.chat_format!r} for llama-cpp-python "
                                     "(e.g. gemma, chatml, llama-3, qwen)") from None
        try:
            with _quiet_stderr():
                llm = llama_cpp.Llama(self.path, n_ctx=self.window_setting or LOCAL_WINDOW,
                                      chat_format=self.chat_format, verbose=False)
        except (ValueError, RuntimeError, OSError) as e:
            raise self.fail(f"cannot load generation model {self.path!r}: {e}") from None
        if not self.chat_format and not llm.metadata.get("tokenizer.chat_template"):
            # llama-cpp-python would fall back to a Llama-2 template and the model would read noise.
            raise GeneratorError(f"{self.path} has no chat template; name one with --chat-format "
                                 f"(e.g. gemma, chatml, llama-3)")
        self._llm = llm
        return llm

    def model_window(self) -> int | None:
        llm = self._load()
        trained = llm.metadata.get(f"{llm.metadata.get('general.architecture')}.context_length")
        return min(llm.n_ctx(), int(trained)) if trained else llm.n_ctx()

    def count_tokens(self, text: str) -> int:
        return len(self._load().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(self, messages: list[dict]) -> Iterator[str | Finish]:
        llm = self._load()
        finish = None
        # A second stream would reset the context under the first: answers take turns.
        if not self._lock.acquire(timeout=BUSY_WAIT_S):
            raise self.fail(f"the model was busy with other answers for {BUSY_WAIT_S} s "
                            "(one at a time in-process); try again")
        try:
            try:
                for chunk in llm.create_chat_completion(messages, stream=True, temperature=0,
                                                        max_tokens=self.max_new_tokens):
                    choice = chunk["choices"][0]
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        yield piece
                    finish = choice.get("finish_reason") or finish
            except (ValueError, RuntimeError) as e:  # llama-cpp-python: "Requested tokens (…) exceed context window of …"
                raise self.refused(str(e)) from None
        finally:
            self._lock.release()
        yield Finish(finish or "stop")


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2: llama.cpp writes some notes there itself, past verbose=False,
    and a CLI user should see one error line or the answer, not the library's notes."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


KINDS = ("extractive", "transformers", "openai", "llamacpp")


def from_settings(settings: Settings, embedder=None) -> Generator:
    """The generator a ``Settings`` names (``embedder`` helps the extractive one rank answer sentences)."""
    s = settings
    return make_generator(
        s.generator, model=s.model, base_url=s.base_url, api_key=s.api_key, prompts_dir=s.prompts,
        max_new_tokens=s.max_new_tokens, context_tokens=s.context_tokens, chat_format=s.chat_format,
        device=s.device, embedder=embedder)


def make_generator(kind: str = "extractive", *, model: str | None = None, base_url: str | None = None,
                   api_key: str | None = None, prompts_dir: str | None = None, max_new_tokens: int = 512,
                   context_tokens: int | None = None, chat_format: str | None = None, device: str | None = None,
                   embedder=None) -> Generator:
    from .extractive import ExtractiveGenerator

    kind = (kind or "extractive").strip().lower()
    common = dict(prompts_dir=prompts_dir, max_new_tokens=max_new_tokens, context_tokens=context_tokens)
    if kind == "extractive":
        return ExtractiveGenerator(embedder)
    if kind in ("transformers", "llamacpp") and not model:
        raise GeneratorError(f"the {kind} generator needs a model {'file' if kind == 'llamacpp' else 'id or path'} "
                             "(--model or NEWSRAG_MODEL)")
    if kind == "transformers":
        if model.lower().endswith(".gguf"):
            raise GeneratorError(f"{model} is a GGUF file: run it with --generator llamacpp")
        return TransformersGenerator(model, device=device, **common)
    if kind == "openai":
        return OpenAIGenerator(model or "default", base_url or "", api_key or os.environ.get("OPENAI_API_KEY"),
                               **common)
    if kind == "llamacpp":
        return LlamaCppGenerator(model, chat_format=chat_format, **common)
    raise GeneratorError(f"unknown generator {kind!r} ({', '.join(KINDS)})")
