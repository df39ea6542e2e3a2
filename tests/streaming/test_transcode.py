"""The transcode run on generated sources: the ladder each one gets, validated with ffprobe.

Clips are 2-3 s, 10-12 fps, encoded with ``-preset ultrafast`` (sources) and the pipeline's
``veryfast`` preset, so the whole module stays small on a shared 2-core machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from streaming import ladder, services, storage
from streaming.models import MediaFile, Rendition
from tests.factories import VideoFactory
from tests.streaming.media import ffprobe, keyframe_times, master_variants, segment_durations
from videos.models import Video

pytestmark = pytest.mark.django_db


def _uploaded(source: Path, **video_fields: Any) -> MediaFile:
    """A media file whose source is in storage and probed, as after an upload (no task queued)."""
    video = VideoFactory(status=Video.Status.PROCESSING, **video_fields)
    name = storage.source_name(video.pk, source.name)
    with open(source, "rb") as handle:
        storage.save_file(name, handle)
    return MediaFile.objects.create(
        video=video, status=MediaFile.Status.UPLOADED, source_path=name, source_size=source.stat().st_size
    )


@pytest.fixture(autouse=True)
def _commit_hooks(django_capture_on_commit_callbacks):
    """Runs on_commit side effects (old outputs removed, owner notified) as a real commit would."""
    global _capture
    _capture = django_capture_on_commit_callbacks


def _transcode(media_file: MediaFile) -> MediaFile:
    with _capture(execute=True):
        result = services.media_file_transcode(media_file_id=media_file.pk)
    assert result is not None
    return result


def _validate_ladder(media_file: MediaFile, media_root: Path, expected: list[tuple[int, int, int]]) -> None:
    """Renditions (quality, width, height) as expected, keyframes aligned, durations right."""
    media_file.refresh_from_db()
    assert media_file.status == MediaFile.Status.READY, media_file.error
    assert media_file.progress == 100
    renditions = list(media_file.renditions.order_by("-quality"))
    assert [(r.quality, r.width, r.height) for r in renditions] == expected
    root = media_root / media_file.output_prefix
    master = master_variants((root / ladder.MASTER_PLAYLIST).read_text())
    assert [v["RESOLUTION"] for v in master] == [f"{w}x{h}" for _, w, h in expected]
    assert all(v["BANDWIDTH"].isdigit() and v["CODECS"].startswith("avc1.64") for v in master)
    keyframes = None
    durations = None
    for rendition in renditions:
        playlist = media_root / rendition.playlist_path
        streams = ffprobe(playlist, "-show_streams")["streams"]
        video = next(s for s in streams if s["codec_type"] == "video")
        assert (video["width"], video["height"]) == (rendition.width, rendition.height)
        assert video["width"] % 2 == 0 and video["height"] % 2 == 0
        assert video["pix_fmt"] == "yuv420p" and video["profile"] == "High"
        # The announced CODECS matches the stream (level_idc in the last two hex digits).
        assert rendition.codecs.split(",")[0] == f"avc1.6400{int(video['level']):02x}"
        has_audio = any(s["codec_type"] == "audio" for s in streams)
        assert has_audio == rendition.codecs.endswith("mp4a.40.2")
        # Aligned keyframes and segment boundaries in every rendition.
        times = keyframe_times(playlist)
        segments = segment_durations(playlist)
        keyframes = keyframes if keyframes is not None else times
        durations = durations if durations is not None else segments
        assert times == keyframes
        assert segments == durations
        assert sum(segments) == pytest.approx(media_file.duration, abs=0.3)
    # A keyframe opening each segment and none inside one, at the same times in every rendition:
    # two 1 s segments first (a player starts after one second of video), then 4 s ones.
    assert keyframes is not None and durations is not None
    starts = ladder.segment_starts(media_file.duration or 0)
    assert [t - keyframes[0] for t in keyframes] == pytest.approx(starts, abs=0.11)
    assert len(durations) == len(starts)
    assert durations[:2] == pytest.approx([1.0, 1.0], abs=0.11)
    assert (root / ladder.POSTER).exists() and media_file.poster_path
    assert media_file.thumbnail_paths and all((media_root / p).exists() for p in media_file.thumbnail_paths)


def test_720p_source_gets_720_480_360(clip, media_root):
    media_file = _uploaded(clip(width=1280, height=720, duration=2.5))
    _transcode(media_file)
    _validate_ladder(media_file, media_root, [(720, 1280, 720), (480, 854, 480), (360, 640, 360)])
    video = Video.objects.get(pk=media_file.video_id)
    assert video.status == Video.Status.READY and video.duration == pytest.approx(2.5, abs=0.2)


@pytest.mark.slow
def test_1080p_landscape_gets_the_full_ladder(clip, media_root):
    media_file = _uploaded(clip(width=1920, height=1080, duration=2.0, fps=10))
    _transcode(media_file)
    _validate_ladder(
        media_file,
        media_root,
        [(1080, 1920, 1080), (720, 1280, 720), (480, 854, 480), (360, 640, 360)],
    )
    bandwidths = list(Rendition.objects.filter(media_file=media_file).values_list("bandwidth", flat=True))
    assert bandwidths == [5_000_000, 2_500_000, 1_000_000, 500_000]


def test_a_player_starts_on_one_second_segments_then_gets_four_second_ones(clip, media_root):
    media_file = _uploaded(clip(width=640, height=360, duration=9.0, fps=8))
    _transcode(media_file)
    _validate_ladder(media_file, media_root, [(360, 640, 360)])
    playlist = media_root / media_file.renditions.get().playlist_path
    assert segment_durations(playlist) == pytest.approx([1.0, 1.0, 4.0, 3.0], abs=0.15)
    assert "#EXT-X-TARGETDURATION:4" in playlist.read_text()


def test_480p_source_is_not_upscaled(clip, media_root):
    media_file = _uploaded(clip(width=854, height=480))
    _transcode(media_file)
    _validate_ladder(media_file, media_root, [(480, 854, 480), (360, 640, 360)])


@pytest.mark.slow
def test_portrait_ladders_on_its_short_side(clip, media_root):
    media_file = _uploaded(clip(width=1080, height=1920, duration=2.0, fps=10))
    _transcode(media_file)
    _validate_ladder(
        media_file,
        media_root,
        [(1080, 1080, 1920), (720, 720, 1280), (480, 480, 854), (360, 360, 640)],
    )


def test_odd_size_853x480_gets_even_dimensions(clip, media_root):
    media_file = _uploaded(clip(width=853, height=480))
    _transcode(media_file)
    _validate_ladder(media_file, media_root, [(480, 852, 480), (360, 640, 360)])


def test_source_without_audio_gives_video_only_renditions(clip, media_root):
    media_file = _uploaded(clip(width=640, height=360, audio=False))
    _transcode(media_file)
    _validate_ladder(media_file, media_root, [(360, 640, 360)])
    media_file.refresh_from_db()
    assert media_file.audio_codec == ""
    assert media_file.renditions.get().codecs == "avc1.64001e"


@pytest.mark.parametrize(
    ("pix_fmt", "profile"), [("yuv444p", "high444"), ("yuv420p10le", "high10")], ids=["444", "10bit"]
)
def test_444_and_10_bit_sources_become_8_bit_420(clip, media_root, pix_fmt, profile):
    media_file = _uploaded(clip(width=640, height=360, pix_fmt=pix_fmt, profile=profile))
    _transcode(media_file)
    _validate_ladder(media_file, media_root, [(360, 640, 360)])


def test_source_below_360p_gets_one_rendition_at_its_own_size(clip, media_root):
    media_file = _uploaded(clip(width=320, height=240))
    _transcode(media_file)
    _validate_ladder(media_file, media_root, [(240, 320, 240)])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is a text file, not a video\n" * 20, "not a readable media file"),
        (None, "not a readable media file"),  # a truncated MP4 (no moov atom)
    ],
    ids=["text", "truncated"],
)
def test_corrupt_or_non_video_source_fails_without_retry(clip, scratch_dir, content, message):
    path = scratch_dir / "broken.mp4"
    if content is None:
        data = clip(width=640, height=360).read_bytes()
        path.write_bytes(
            data[: len(data) // 3] if data[:64].find(b"moov") == -1 else data[64 : len(data) // 2]
        )
    else:
        path.write_bytes(content)
    media_file = _uploaded(path)
    # Permanent: the service marks it failed and returns (nothing raised, so no retry).
    assert services.media_file_transcode(media_file_id=media_file.pk) is None
    media_file.refresh_from_db()
    assert media_file.status == MediaFile.Status.FAILED
    assert message in media_file.error
    assert media_file.attempts == 1
    assert not media_file.renditions.exists()
    assert Video.objects.get(pk=media_file.video_id).status == Video.Status.FAILED


def test_audio_only_file_is_refused_as_no_video_stream(scratch_dir):
    import subprocess

    path = scratch_dir / "tone.m4a"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=duration=1",
            "-c:a",
            "aac",
            str(path),
        ],
        check=True,
    )
    media_file = _uploaded(path)
    services.media_file_transcode(media_file_id=media_file.pk)
    media_file.refresh_from_db()
    assert media_file.status == MediaFile.Status.FAILED
    assert "no video stream" in media_file.error


def test_rerun_after_a_crash_leaves_one_set_of_renditions_and_no_orphans(clip, media_root):
    media_file = _uploaded(clip(width=640, height=360))
    _transcode(media_file)
    media_file.refresh_from_db()
    first_prefix = media_file.output_prefix
    # A crashed run: it claimed the file, wrote half its outputs and died (stale heartbeat).
    orphan = media_root / storage.output_prefix(media_file.video_id, "deadbeef0000") / "360p"
    orphan.mkdir(parents=True)
    (orphan / "seg_00000.ts").write_bytes(b"partial")
    MediaFile.objects.filter(pk=media_file.pk).update(
        status=MediaFile.Status.PROCESSING, run_token="deadbeef0000", heartbeat_at=None
    )
    _transcode(media_file)
    media_file.refresh_from_db()
    assert media_file.status == MediaFile.Status.READY
    assert media_file.renditions.count() == 1
    runs = os.listdir(media_root / storage.hls_root(media_file.video_id))
    assert runs == [media_file.output_prefix.rsplit("/", 1)[-1]]
    assert media_file.output_prefix != first_prefix  # a new folder: cached segments never change


def test_a_run_that_is_alive_is_not_taken_over(clip):
    from django.utils import timezone

    media_file = _uploaded(clip(width=640, height=360))
    MediaFile.objects.filter(pk=media_file.pk).update(
        status=MediaFile.Status.PROCESSING, run_token="alive", heartbeat_at=timezone.now()
    )
    with pytest.raises(services.MediaBusy):
        services.media_file_transcode(media_file_id=media_file.pk)
    media_file.refresh_from_db()
    assert (media_file.status, media_file.run_token) == (MediaFile.Status.PROCESSING, "alive")


def test_ready_media_is_not_transcoded_again_by_a_duplicate_message(clip):
    media_file = _uploaded(clip(width=640, height=360))
    _transcode(media_file)
    media_file.refresh_from_db()
    assert services.media_file_transcode(media_file_id=media_file.pk) is None
    assert MediaFile.objects.get(pk=media_file.pk).attempts == media_file.attempts


def test_time_limit_fails_the_job_and_removes_temporary_files(clip, settings, media_root):
    settings.TRANSCODE_TIME_LIMIT_BASE = 0
    settings.TRANSCODE_TIME_LIMIT_PER_SECOND = 0.0
    media_file = _uploaded(clip(width=1280, height=720, duration=2.5))
    services.media_file_transcode(media_file_id=media_file.pk)
    media_file.refresh_from_db()
    assert media_file.status == MediaFile.Status.FAILED
    assert "longer than its limit" in media_file.error
    assert os.listdir(media_root / ".work") == []
    assert not (media_root / storage.hls_root(media_file.video_id)).exists() or not os.listdir(
        media_root / storage.hls_root(media_file.video_id)
    )


def test_temporary_files_are_removed_after_success(clip, media_root):
    media_file = _uploaded(clip(width=640, height=360))
    _transcode(media_file)
    assert os.listdir(media_root / ".work") == []


def test_missing_source_is_transient(settings):
    video = VideoFactory(status=Video.Status.PROCESSING)
    media_file = MediaFile.objects.create(
        video=video, status=MediaFile.Status.UPLOADED, source_path=f"videos/{video.pk}/source/gone.mp4"
    )
    # The storage lost the file (or is unreachable): worth a retry, handed back for it.
    with pytest.raises(services.TransientMediaError):
        services.media_file_transcode(media_file_id=media_file.pk)
    media_file.refresh_from_db()
    assert media_file.status == MediaFile.Status.UPLOADED
    assert media_file.error.startswith("Retrying after:")


def test_a_file_that_crashes_every_run_is_given_up(clip):
    media_file = _uploaded(clip(width=640, height=360))
    # Six runs claimed it and none finished (each crash requeued the message).
    MediaFile.objects.filter(pk=media_file.pk).update(
        status=MediaFile.Status.PROCESSING, attempts=services.MAX_RUNS, run_token="dead", heartbeat_at=None
    )
    assert services.media_file_transcode(media_file_id=media_file.pk) is None
    media_file.refresh_from_db()
    assert media_file.status == MediaFile.Status.FAILED
    assert "Gave up after 6 runs" in media_file.error
