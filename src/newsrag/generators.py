"""Generators: one protocol, three backends.

- ``extractive`` (default, offline): answers and summaries made only of sentences
  that stand in the archive (see extractive.py).
- ``transformers``: any Hugging Face seq2seq or chat model, by id or local path.
- ``openai``: any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama).

The model backends share ChatGenerator: prompts from ``prompts/``, passages packed
to the model's window, map-reduce for summaries larger than the window, and text
streamed as it is produced. Citations are not the model's word: answering.py
matches every sentence back to the passages afterwards.
"""
from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from typing import Iterator, Protocol

from . import prompts
from .prompts import Passage


class GeneratorError(RuntimeError):
    pass


class Generator(Protocol):
    name: str

    def answer(self, question: str, passages: list[Passage], *, today: str) -> Iterator[str]: ...

    def summarize(self, topic: str, passages: list[Passage], *, period: str, budget_chars: int) -> Iterator[str]: ...


class ChatGenerator:
    """What the model backends share; subclasses provide stream(), count_tokens() and context_tokens."""

    name = "chat"
    context_tokens = 4096

    def __init__(self, prompts_dir: str | None = None, max_new_tokens: int = 512):
        self.prompts_dir = prompts_dir
        self.max_new_tokens = max_new_tokens

    # -- backend-specific
    def stream(self, messages: list[dict]) -> Iterator[str]:
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        return len(text)  # a CJK character is about one token for Chinese-capable models

    # -- shared
    def _budget(self, template: dict[str, str], **values: str) -> int:
        """Tokens left for passages once the prompt itself and the answer are reserved."""
        fixed = sum(self.count_tokens(m["content"]) for m in prompts.render(template, [], **values))
        return self.context_tokens - fixed - self.max_new_tokens - 32

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
            raise GeneratorError(f"the model's window ({self.context_tokens} tokens) leaves no room for a passage "
                                 f"after the prompt and {self.max_new_tokens} new tokens")
        return fit

    def answer(self, question: str, passages: list[Passage], *, today: str) -> Iterator[str]:
        template = prompts.load("answer", self.prompts_dir)
        fit = self._pack_some(passages, self._budget(template, question=question, today=today))
        yield from self.stream(prompts.render(template, fit, question=question, today=today))

    def summarize(self, topic: str, passages: list[Passage], *, period: str, budget_chars: int) -> Iterator[str]:
        template = prompts.load("briefing", self.prompts_dir)
        budget = self._budget(template, topic=topic, period=period)
        groups: list[list[Passage]] = []
        rest = list(passages)
        while rest:
            fit = self._pack_some(rest, budget)
            groups.append(fit)
            rest = rest[len(fit):]
        if len(groups) == 1:
            yield from self.stream(prompts.render(template, groups[0], topic=topic, period=period))
            return
        # Map: one summary per window-sized group; reduce: a summary of those summaries.
        partial = []
        for i, group in enumerate(groups, 1):
            text = "".join(self.stream(prompts.render(template, group, topic=topic, period=period)))
            partial.append(Passage(i, "", f"{topic}（第{i}部分）", None, "", text))
        yield from self.summarize(topic, partial, period=period, budget_chars=budget_chars)


class TransformersGenerator(ChatGenerator):
    """A Hugging Face model by id or local folder: chat LMs (Qwen2.5-Instruct) and seq2seq (mT5)."""

    def __init__(self, model: str, device: str | None = None, prompts_dir: str | None = None,
                 max_new_tokens: int = 512):
        super().__init__(prompts_dir, max_new_tokens)
        self.name = f"transformers:{model}"
        self.model_name = model
        self._device = device
        self._model = self._tok = None

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
            raise GeneratorError(f"cannot load generation model {self.model_name!r}: {str(e).splitlines()[0]}") from e
        window = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        if not window and config.is_encoder_decoder:
            window = 512 if getattr(config, "relative_attention_num_buckets", None) else 1024
        self.context_tokens = min(int(window or 2048), 32768)

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

    def stream(self, messages: list[dict]) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        self._load()
        inputs = self._inputs(messages)
        streamer = TextIteratorStreamer(self._tok, skip_prompt=not self._model.config.is_encoder_decoder,
                                        skip_special_tokens=True)
        errors: list[BaseException] = []

        def run():
            try:
                self._model.generate(**inputs, streamer=streamer, max_new_tokens=self.max_new_tokens,
                                     do_sample=False, pad_token_id=self._tok.pad_token_id or self._tok.eos_token_id)
            except BaseException as e:  # surfaced in the caller's thread below
                errors.append(e)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        yield from streamer
        thread.join()
        if errors:
            raise GeneratorError(f"generation failed: {errors[0]}") from errors[0]


class OpenAIGenerator(ChatGenerator):
    """An OpenAI-compatible /chat/completions endpoint, streamed as server-sent events."""

    def __init__(self, model: str, base_url: str, api_key: str | None = None, prompts_dir: str | None = None,
                 max_new_tokens: int = 512, context_tokens: int = 8192, timeout: float = 120.0):
        super().__init__(prompts_dir, max_new_tokens)
        if not base_url:
            raise GeneratorError("the openai generator needs a base URL (--base-url or NEWSRAG_BASE_URL)")
        self.name = f"openai:{model}"
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.context_tokens = context_tokens
        self.timeout = timeout

    def stream(self, messages: list[dict]) -> Iterator[str]:
        body = json.dumps({"model": self.model, "messages": messages, "stream": True, "temperature": 0,
                           "max_tokens": self.max_new_tokens}).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers=headers)
        try:
            resp = urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            detail = e.read(300).decode("utf-8", "replace").strip()
            raise GeneratorError(f"{self.base_url} answered HTTP {e.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as e:
            raise GeneratorError(f"cannot reach {self.base_url}: {getattr(e, 'reason', e)}") from None
        with resp:
            for raw in resp:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    choice = json.loads(data)["choices"][0]
                except (json.JSONDecodeError, KeyError, IndexError):
                    raise GeneratorError(f"{self.base_url} sent an event that is not a chat chunk: {data[:80]}")
                piece = (choice.get("delta") or {}).get("content") or (choice.get("message") or {}).get("content")
                if piece:
                    yield piece


def make_generator(kind: str = "extractive", *, model: str | None = None, base_url: str | None = None,
                   api_key: str | None = None, prompts_dir: str | None = None, max_new_tokens: int = 512,
                   context_tokens: int = 8192, device: str | None = None, embedder=None) -> Generator:
    from .extractive import ExtractiveGenerator

    kind = (kind or "extractive").strip().lower()
    if kind == "extractive":
        return ExtractiveGenerator(embedder)
    if kind == "transformers":
        if not model:
            raise GeneratorError("the transformers generator needs a model id or path (--model or NEWSRAG_MODEL)")
        return TransformersGenerator(model, device=device, prompts_dir=prompts_dir, max_new_tokens=max_new_tokens)
    if kind == "openai":
        return OpenAIGenerator(model or "default", base_url or "", api_key or os.environ.get("OPENAI_API_KEY"),
                               prompts_dir=prompts_dir, max_new_tokens=max_new_tokens, context_tokens=context_tokens)
    raise GeneratorError(f"unknown generator {kind!r} (extractive, transformers or openai)")
