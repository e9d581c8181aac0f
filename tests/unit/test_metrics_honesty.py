"""Each case metric measures what its name says, or is null: the figures behind issue 19's 6777 tok/s and
moondream2's TTFT equal to its total time, and what every peak figure measured (``peak_kind``)."""

from __future__ import annotations

from vlmtui.memory.samples import FrameworkSample
from vlmtui.worker.backends.base import GenerationStats
from vlmtui.worker.backends.server_timings import full_timings, stream_stats
from vlmtui.worker.measure import CasePeak, case_metrics


def _peak(framework: FrameworkSample | None = None, rss: int = 0) -> CasePeak:
    peak = CasePeak()
    if framework is not None or rss:
        peak.observe(framework, rss)
    return peak


def test_ttft_is_the_backends_first_token_not_the_first_text_chunk() -> None:
    # tiny moondream2 on mlx-vlm: 24 tokens, the detokenizer held all text to the last step (1.08 s of 1.09 s).
    times = [10.0 + 1.08 + i * 1e-4 for i in range(3)]
    stats = GenerationStats(prompt_tokens=762, gen_tokens=24, prompt_tps=773.45, gen_tps=300.81, ttft_s=0.99)
    metrics = case_metrics(stats, times, 10.0, 1.09, _peak())
    assert metrics["ttft_s"] == 0.99
    assert metrics["gen_tps"] == 300.81, "the backend's own decode rate stands"
    # Without the backend's clock the first chunk is all there is.
    assert case_metrics(GenerationStats(gen_tokens=24), times, 10.0, 1.09, _peak())["ttft_s"] == 1.08


def test_a_stream_delivered_in_a_burst_gives_no_decode_rate() -> None:
    # mlx_vlm.server, measured: 24 tokens decoded in 62 ms reached the client within 12 ms (1,900 tok/s by
    # arrival; 23 tokens in 3.4 ms would be issue 19's 6777). Without the server's timings it cannot be known.
    client = stream_stats(None, None, chunks=24, client_ttft_s=0.137, span_s=0.0034)
    assert client.gen_tps is None and client.ttft_s == 0.137 and client.metrics_source == "client"
    times = [5.0 + 0.137 + i * 0.0034 / 23 for i in range(24)]
    metrics = case_metrics(client, times, 5.0, 0.24, _peak())
    assert metrics["gen_tps"] is None, "chunk arrival times of a client's stream are not a decode rate"
    assert metrics["e2e_tps"] is not None and metrics["e2e_tps"] < 24 / 0.137, "end to end, never above"


def test_a_rate_needs_two_tokens() -> None:
    one = full_timings({"prompt_n": 52, "prompt_ms": 8.0, "predicted_n": 1, "predicted_ms": 0.0,
                        "predicted_per_second": 6777.0})
    stats = stream_stats(one, None, chunks=1, client_ttft_s=0.02, span_s=0.0)
    assert stats.gen_tps is None
    assert case_metrics(GenerationStats(gen_tokens=1, gen_tps=6777.0), [1.1], 1.0, 0.24, _peak())["gen_tps"] is None


def test_an_in_process_stream_of_single_tokens_still_gives_a_rate() -> None:
    times = [1.0 + 0.1 + i * 0.01 for i in range(11)]  # 11 tokens, 10 intervals of 10 ms
    metrics = case_metrics(GenerationStats(), times, 1.0, 0.3, _peak())
    assert metrics["gen_tps"] == 100.0 and metrics["gen_tokens"] == 11


def test_a_first_token_outside_the_case_is_null() -> None:
    assert case_metrics(GenerationStats(ttft_s=2.0, gen_tokens=3), [], 0.0, 1.0, _peak())["ttft_s"] is None


def test_every_peak_says_what_it_measured() -> None:
    mlx = GenerationStats(gen_tokens=2, peak_memory_bytes=1_638_280, extra={"peak_kind": "mlx-active"})
    metrics = case_metrics(mlx, [], 0.0, 1.0, _peak(rss=409 << 20))
    assert (metrics["peak_memory_bytes"], metrics["peak_kind"]) == (1_638_280, "mlx-active")
    assert "peak_kind" not in {k for k in metrics if k != "peak_kind" and metrics[k] == "mlx-active"}
    cpu = case_metrics(GenerationStats(gen_tokens=2), [], 0.0, 1.0, _peak(rss=409 << 20))
    assert (cpu["peak_memory_bytes"], cpu["peak_kind"]) == (409 << 20, "rss")
    server = _peak(FrameworkSample(framework="server-rss", device="server", guarded_bytes=29 << 20), rss=80 << 20)
    assert case_metrics(GenerationStats(gen_tokens=2), [], 0.0, 1.0, server)["peak_kind"] == "server-rss"
    cuda = _peak(FrameworkSample(framework="torch-cuda", device="cuda:0", guarded_bytes=3 << 30), rss=1 << 30)
    assert case_metrics(GenerationStats(gen_tokens=2), [], 0.0, 1.0, cuda)["peak_kind"] == "cuda-reserved"
    assert case_metrics(GenerationStats(gen_tokens=2), [], 0.0, 1.0, _peak())["peak_kind"] is None


def test_mlx_servers_lifetime_peak_is_not_the_cases_peak() -> None:
    timings = full_timings({"prompt_n": 52, "cache_n": 0, "prompt_ms": 25.4, "predicted_n": 24,
                            "predicted_ms": 68.6, "predicted_per_second": 350.07, "peak_memory": 0.001548236})
    stats = stream_stats(timings, None, chunks=19, client_ttft_s=0.178, span_s=0.045)
    assert stats.peak_memory_bytes is None, "MLX's peak since the server started is no per-case figure"
    assert stats.extra["server_mlx_peak_bytes"] == 1_548_236 and stats.gen_tps == 350.07


def test_a_model_in_a_server_not_ours_has_no_peak() -> None:
    from vlmtui.worker.tree_peak import with_tree_peak

    remote = with_tree_peak(GenerationStats(gen_tokens=2), None)  # base_url: no server process of ours
    metrics = case_metrics(remote, [], 0.0, 1.0, _peak(rss=80 << 20))
    assert (metrics["peak_memory_bytes"], metrics["peak_kind"]) == (None, None), "not the client's 80 MiB"
    managed = with_tree_peak(GenerationStats(gen_tokens=2), 29 << 20)
    assert case_metrics(managed, [], 0.0, 1.0, _peak(rss=80 << 20))["peak_kind"] == "server-rss"
    unread = case_metrics(with_tree_peak(GenerationStats(gen_tokens=2), 0), [], 0.0, 1.0, _peak(rss=80 << 20))
    assert unread["peak_kind"] == "rss", "nothing read: the sampled figure stands, saying what it is"
