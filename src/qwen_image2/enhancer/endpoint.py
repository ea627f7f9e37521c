"""The endpoint backend: an OpenAI-compatible chat server (vLLM, SGLang, ...) through the `openai` client.

Bounded: the client's `timeout` limits each attempt, and answers are not streamed, so a server sends
nothing until it is done and the read timeout bounds the whole answer. Retries are ours, not the
client's (it gets max_retries=0): the client would honour a server's `Retry-After` of up to 120 s, so
one busy server could hold a rewrite for minutes. We retry what the client would (timeouts, connection
errors, 408/409/429/5xx), at most `max_retries` times, after RETRY_DELAYS_S: a call ends within
(1 + max_retries) x timeout_s plus those delays.
"""

import time

import openai

from qwen_image2.enhancer.backend import BackendFailure, Completion, Sampling

RETRY_DELAYS_S = (0.25, 0.5, 1.0)  # then 1.0 s for any further retry
RETRIED_STATUS = {408, 409, 429}


def _retryable(error: Exception) -> bool:
    if isinstance(error, openai.APIConnectionError):  # APITimeoutError is one too
        return True
    return isinstance(error, openai.APIStatusError) and (
        error.status_code in RETRIED_STATUS or error.status_code >= 500
    )


def _reason(error: Exception, timeout_s: float, attempts: int) -> str:
    tries = f"{attempts} attempt(s)"
    if isinstance(error, openai.APITimeoutError):
        return f"endpoint timed out after {timeout_s:g} s ({tries})"
    if isinstance(error, openai.APIConnectionError):
        return f"endpoint unreachable ({tries}): {error.__cause__ or error}"
    if isinstance(error, openai.APIStatusError):
        return f"endpoint answered HTTP {error.status_code} ({tries}): {error.message}"
    return f"endpoint error ({tries}): {type(error).__name__}: {error}"


class EndpointBackend:
    """`model` at `base_url` (e.g. http://127.0.0.1:8000/v1). `vision`: the model takes image parts."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "EMPTY",
        vision: bool = True,
        timeout_s: float = 30.0,
        max_retries: int = 1,
    ):
        self.model, self.vision, self.timeout_s, self.max_retries = model, vision, timeout_s, max_retries
        # vLLM accepts any key unless started with --api-key; the client refuses to start without one.
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)

    def request(self, messages: list[dict], sampling: Sampling) -> dict:
        """The chat.completions arguments. vLLM's extras go in extra_body, and only when they matter, so a
        server without them (OpenAI's own) is not sent fields it rejects."""
        arguments = {"model": self.model, "messages": messages, "max_tokens": sampling.max_new_tokens}
        extra: dict = {}
        if sampling.greedy:
            arguments["temperature"] = 0.0
        else:
            arguments.update(temperature=sampling.temperature, top_p=sampling.top_p)
            if sampling.top_k:
                extra["top_k"] = sampling.top_k
        if sampling.repetition_penalty != 1.0:
            extra["repetition_penalty"] = sampling.repetition_penalty
        if sampling.thinking is not None:
            extra["chat_template_kwargs"] = {"enable_thinking": sampling.thinking}
        if extra:
            arguments["extra_body"] = extra
        return arguments

    def complete(self, messages: list[dict], sampling: Sampling) -> Completion:
        arguments = self.request(messages, sampling)
        for attempt in range(1 + self.max_retries):
            try:
                response = self.client.chat.completions.create(**arguments)
                break
            except openai.OpenAIError as error:
                if attempt == self.max_retries or not _retryable(error):
                    raise BackendFailure(_reason(error, self.timeout_s, attempt + 1)) from None
            time.sleep(RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)])
        if not response.choices or not response.choices[0].message.content:
            raise BackendFailure("endpoint answered no text")
        choice = response.choices[0]
        return Completion(choice.message.content, choice.finish_reason or "stop")
