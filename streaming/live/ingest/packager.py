#!/usr/bin/env python3
"""The live ingest's helper, run by nginx-rtmp (standard library only: it runs on the ingest).

``package``: started by ``exec_push`` for each publish, named by the session (never the key).
Asks the app how to package the session (passthrough or a ladder, segment length), probes the
source, runs one long-lived ffmpeg that writes the live HLS, tells the app when the first
segment is out (the session becomes ``live``), and stops ffmpeg when nginx stops it: TERM,
then KILL after a grace period (ffmpeg blocked on a read may ignore a single TERM).

``record-done``: run by ``exec_record_done`` when a connection's FLV recording closes; uploads
it to the app (the replay's source) and deletes the local copy.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

KILL_AFTER = 3.0
# Enough of the input to see both streams of a 1080p broadcast without waiting long for it.
PROBESIZE = "2000000"
ANALYZEDURATION = "2000000"
PROBE_ATTEMPTS = 3
READY_TIMEOUT = 30.0


LOG_FILE = {"path": ""}


def log(message: str) -> None:
    """nginx gives exec'd children no stderr: the packager logs to DIR/packager.log."""
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} live-packager[{os.getpid()}]: {message}\n"
    if LOG_FILE["path"]:
        with open(LOG_FILE["path"], "a", encoding="utf-8") as handle:
            handle.write(line)
    else:
        sys.stderr.write(line)


def _url(conf: dict[str, Any], path: str, **params: str) -> str:
    query = urllib.parse.urlencode({"secret": conf["hook_secret"], "origin": conf["origin_url"], **params})
    return f"{conf['hooks_url'].rstrip('/')}/{path}?{query}"


def _call(
    conf: dict[str, Any],
    method: str,
    path: str,
    body: bytes | None = None,
    timeout: float = 10.0,
    **params: str,
) -> Any:
    # The URL is the app's hooks URL from the ingest's own config (http or https).
    request = urllib.request.Request(_url(conf, path, **params), data=body, method=method)  # noqa: S310
    request.add_header("Content-Type", "application/json" if body is not None else "text/plain")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read() or b"null")


# --- Probing ---------------------------------------------------------------------------------

# ISO/IEC 14496-15 profile_idc for the RFC 6381 "avc1.PPCCLL" string.
_AVC_PROFILES = {"baseline": 66, "constrained baseline": 66, "main": 77, "high": 100, "extended": 88}
_AVC_CONSTRAINTS = {"constrained baseline": 0xC0}


def codecs_string(video: dict[str, Any], audio: dict[str, Any] | None) -> str:
    parts = []
    if video.get("codec_name") == "h264":
        profile = str(video.get("profile", "high")).lower()
        level = int(video.get("level") or 31)
        parts.append(
            f"avc1.{_AVC_PROFILES.get(profile, 100):02x}{_AVC_CONSTRAINTS.get(profile, 0):02x}{level:02x}"
        )
    else:
        parts.append(str(video.get("codec_name", "")))
    if audio is not None:
        parts.append("mp4a.40.2" if audio.get("codec_name") == "aac" else str(audio.get("codec_name")))
    return ",".join(parts)


def probe(conf: dict[str, Any], source: str) -> dict[str, Any]:
    """Width, height, codecs and bitrate of the incoming stream."""
    command = [
        conf.get("ffprobe", "ffprobe"),
        "-v",
        "error",
        "-probesize",
        PROBESIZE,
        "-analyzeduration",
        ANALYZEDURATION,
        "-show_streams",
        "-show_format",
        "-of",
        "json",
        source,
    ]
    result = subprocess.run(command, capture_output=True, timeout=20, check=True)  # noqa: S603 - a list, no shell
    data = json.loads(result.stdout)
    streams = data.get("streams", [])
    video = next(s for s in streams if s.get("codec_type") == "video")
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    tags = data.get("format", {}).get("tags", {})
    # FLV metadata carries the encoder's declared rates (kb/s).
    declared = sum(float(tags.get(name, 0) or 0) for name in ("videodatarate", "audiodatarate")) * 1000
    bitrate = int(video.get("bit_rate") or declared or data.get("format", {}).get("bit_rate") or 0)
    return {
        "width": int(video["width"]),
        "height": int(video["height"]),
        "codecs": codecs_string(video, audio),
        "has_audio": audio is not None,
        "bitrate": bitrate,
    }


# --- ffmpeg --------------------------------------------------------------------------------


def hls_flags(config: dict[str, Any]) -> list[str]:
    # append_list + discont_start: a reconnect continues the numbering after an
    # EXT-X-DISCONTINUITY instead of restarting at 0 (a media sequence going backwards).
    return [
        "-f",
        "hls",
        "-hls_time",
        str(config["segment_seconds"]),
        "-hls_list_size",
        str(config["window_segments"]),
        "-hls_delete_threshold",
        "2",
        "-hls_flags",
        "delete_segments+append_list+discont_start+omit_endlist+program_date_time+independent_segments+temp_file",
    ]


def ffmpeg_command(
    conf: dict[str, Any], config: dict[str, Any], source: str, info: dict[str, Any], out: str
) -> tuple[list[str], list[dict[str, Any]]]:
    """The ffmpeg command and the renditions it writes (each in its own folder under ``out``)."""
    command = [
        conf.get("ffmpeg", "ffmpeg"),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "warning",
        "-probesize",
        PROBESIZE,
        "-analyzeduration",
        ANALYZEDURATION,
        "-i",
        source,
    ]
    rungs = [rung for rung in config.get("rungs", []) if rung["height"] < info["height"]]
    source_rendition = {
        "name": "src",
        "width": info["width"],
        "height": info["height"],
        "bandwidth": max(info["bitrate"], 1) if info["bitrate"] else config["default_bandwidth"],
        "codecs": info["codecs"],
    }
    if not rungs:
        os.makedirs(os.path.join(out, "src"), exist_ok=True)
        command += ["-map", "0:v:0"] + (["-map", "0:a:0"] if info["has_audio"] else [])
        command += ["-c", "copy", *hls_flags(config)]
        command += ["-hls_segment_filename", os.path.join(out, "src", "seg_%05d.ts")]
        command += [os.path.join(out, "src", "index.m3u8")]
        return command, [source_rendition]
    # A ladder: the source copied, plus each lower rung encoded with a keyframe per segment.
    renditions = [source_rendition]
    split = f"[0:v]split={len(rungs)}" + "".join(f"[v{i}]" for i in range(len(rungs)))
    scales = ";".join(f"[v{i}]scale=-2:{rung['height']}[o{i}]" for i, rung in enumerate(rungs))
    command += ["-filter_complex", f"{split};{scales}"]
    command += ["-map", "0:v:0"] + (["-map", "0:a:0"] if info["has_audio"] else [])
    stream_map = ["v:0" + (",a:0" if info["has_audio"] else "") + ",name:src"]
    command += ["-c:v:0", "copy"] + (["-c:a:0", "copy"] if info["has_audio"] else [])
    gop = str(max(1, round(config["segment_seconds"] * config.get("fps", 30))))
    for index, rung in enumerate(rungs, start=1):
        command += ["-map", f"[o{index - 1}]"] + (["-map", "0:a:0"] if info["has_audio"] else [])
        command += [
            f"-c:v:{index}",
            "libx264",
            f"-preset:v:{index}",
            config.get("preset", "veryfast"),
            f"-tune:v:{index}",
            "zerolatency",
            f"-b:v:{index}",
            str(rung["video_bitrate"]),
            f"-maxrate:v:{index}",
            str(rung["video_bitrate"]),
            f"-bufsize:v:{index}",
            str(rung["video_bitrate"] * 2),
            f"-g:v:{index}",
            gop,
            f"-force_key_frames:v:{index}",
            f"expr:gte(t,n_forced*{config['segment_seconds']})",
        ]
        if info["has_audio"]:
            command += [f"-c:a:{index}", "aac", f"-b:a:{index}", "96k"]
        stream_map.append(
            f"v:{index}" + (f",a:{index}" if info["has_audio"] else "") + f",name:{rung['height']}p"
        )
        width = int(round(info["width"] * rung["height"] / info["height"] / 2) * 2)
        renditions.append(
            {
                "name": f"{rung['height']}p",
                "width": width,
                "height": rung["height"],
                "bandwidth": int(rung["video_bitrate"] * 1.1) + (96_000 if info["has_audio"] else 0),
                "codecs": "avc1.64001f" + (",mp4a.40.2" if info["has_audio"] else ""),
            }
        )
    for name in [r["name"] for r in renditions]:
        os.makedirs(os.path.join(out, name), exist_ok=True)
    command += ["-var_stream_map", " ".join(stream_map), *hls_flags(config)]
    command += ["-hls_segment_filename", os.path.join(out, "%v", "seg_%05d.ts")]
    command += [os.path.join(out, "%v", "index.m3u8")]
    return command, renditions


def _segments_since(path: str, started: float) -> bool:
    try:
        return os.path.getmtime(path) >= started and "#EXTINF" in open(path, encoding="utf-8").read()
    except OSError:
        return False


def package(conf: dict[str, Any], name: str) -> int:
    stopping = {"flag": False}
    process: dict[str, subprocess.Popen[bytes] | None] = {"ffmpeg": None}

    def on_term(signum: int, _frame: Any) -> None:
        stopping["flag"] = True
        child = process["ffmpeg"]
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + KILL_AFTER
            while child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if child.poll() is None:
                child.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    source = f"rtmp://127.0.0.1:{conf['rtmp_port']}/live/{name}"
    try:
        config = _call(conf, "GET", f"sessions/{name}/config")
        for attempt in range(PROBE_ATTEMPTS):
            try:
                info = probe(conf, source)
                break
            except StopIteration:  # no video stream seen yet: look again
                if attempt == PROBE_ATTEMPTS - 1:
                    raise
                log(f"{name}: no video stream in the probe yet, attempt {attempt + 1}")
    except subprocess.CalledProcessError as exc:
        log(f"{name}: cannot probe the input: {exc.stderr.decode(errors='replace')[-500:]}")
        return 1
    except (OSError, subprocess.SubprocessError, ValueError, StopIteration, KeyError) as exc:
        log(f"{name}: cannot start: {exc!r}")
        return 1
    out = os.path.join(conf["hls_dir"], name)
    os.makedirs(out, exist_ok=True)
    command, renditions = ffmpeg_command(conf, config, source, info, out)
    started = time.time()
    log(f"{name}: {' '.join(command)}")
    stderr = open(LOG_FILE["path"], "ab") if LOG_FILE["path"] else None  # noqa: SIM115 - the child keeps it
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=stderr)  # noqa: S603 - a list, no shell
    process["ffmpeg"] = child
    playlists = [os.path.join(out, r["name"], "index.m3u8") for r in renditions]
    deadline = time.monotonic() + READY_TIMEOUT
    while child.poll() is None and time.monotonic() < deadline:
        if all(_segments_since(path, started) for path in playlists):
            try:
                _call(conf, "POST", f"sessions/{name}/ready", json.dumps({"renditions": renditions}).encode())
            except OSError as exc:
                log(f"{name}: the app did not take the ready call: {exc!r}")
            break
        time.sleep(0.2)
    code = child.wait()
    log(f"{name}: ffmpeg exited with {code}")
    return code


def record_done(conf: dict[str, Any], name: str, path: str) -> int:
    """Uploads one closed recording (retrying for a while), then deletes it."""
    part = os.path.basename(path)
    try:
        if not _call(conf, "GET", f"sessions/{name}/config").get("record", True):
            os.unlink(path)  # no replay for this broadcast
            return 0
    except (OSError, ValueError) as exc:
        log(f"{name}: cannot ask about recording {part}: {exc!r}; uploading it")
    for attempt in range(7):  # about a minute and a half in all
        try:
            size = os.path.getsize(path)
            with open(path, "rb") as handle:
                request = urllib.request.Request(  # noqa: S310 - the app's hooks URL
                    _url(conf, f"sessions/{name}/recordings", part=part),
                    data=handle,
                    method="POST",
                    headers={"Content-Type": "video/x-flv", "Content-Length": str(size)},
                )
                with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310
                    response.read()
            os.unlink(path)
            return 0
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500:
                log(f"{name}: recording {part} refused ({exc.code}); kept at {path}")
                return 1
            log(f"{name}: recording upload failed ({exc.code}), attempt {attempt + 1}")
        except OSError as exc:
            log(f"{name}: recording upload failed ({exc!r}), attempt {attempt + 1}")
        time.sleep(min(30, 2**attempt))
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["package", "record-done"])
    parser.add_argument("--conf", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--path", default="")
    args = parser.parse_args(argv)
    with open(args.conf, encoding="utf-8") as handle:
        conf = json.load(handle)
    LOG_FILE["path"] = conf.get("log_file", "")
    if args.action == "package":
        return package(conf, args.name)
    return record_done(conf, args.name, args.path)


if __name__ == "__main__":
    sys.exit(main())
