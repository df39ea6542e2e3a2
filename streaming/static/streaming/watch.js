// The watch page: asks the stream endpoint for signed URLs, then plays the master playlist
// with hls.js (or natively where the browser plays HLS itself). It reports the playback's
// quality (start-up time, stalls, rendition switches, errors, time watched) to the beacon
// endpoint, whose heartbeats also keep this playback's concurrent-stream lease alive.
(function () {
  "use strict";
  var root = document.getElementById("player");
  var video = document.getElementById("video");
  var statusLine = document.getElementById("status");
  var streamUrl = root.getAttribute("data-stream-url");
  var videoId = root.getAttribute("data-video-id");
  var beaconUrl = root.getAttribute("data-beacon-url");
  var heartbeatMs = 1000 * (parseInt(root.getAttribute("data-heartbeat-seconds"), 10) || 20);
  var viewId = newViewId();
  // marks: milliseconds since the page asked to play (performance.now() based), for the
  // start-up time and its parts (bench/playback.py reads them).
  var state = (window.videoplatformPlayer = {
    ready: false,
    error: null,
    level: null,
    height: null,
    viewId: viewId,
    marks: {},
    sent: [],
  });
  var requestedAt = null;
  var started = false;
  var stalledAt = null;
  var watchedMs = 0;
  var lastTick = null;
  var pending = [];
  var stopped = false;
  var lowestStart = /[?&]start=lowest(&|$)/.test(window.location.search);

  function say(text) {
    statusLine.textContent = text;
  }

  function newViewId() {
    if (window.crypto && window.crypto.randomUUID) {
      return window.crypto.randomUUID();
    }
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) {
      return (b + 0x100).toString(16).slice(1);
    }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  function mark(name) {
    if (requestedAt !== null && state.marks[name] === undefined) {
      state.marks[name] = Math.round(performance.now() - requestedAt);
    }
  }

  function rendition() {
    // "playing" can come before hls.js reports LEVEL_SWITCHED: the decoded frame's height then.
    var height = state.height || video.videoHeight;
    return height ? height + "p" : undefined;
  }

  // --- Beacons -------------------------------------------------------------------------------
  function batch(events) {
    return JSON.stringify({ view_id: viewId, video_id: videoId, events: events });
  }

  function flush() {
    if (!pending.length) {
      return;
    }
    var events = pending.splice(0, 50);
    state.sent.push.apply(state.sent, events);
    fetch(beaconUrl, {
      method: "POST",
      keepalive: true,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: batch(events),
    }).catch(function () {
      return null; // QoE is best effort: playback never waits for it
    });
  }

  function report(event, now) {
    var r = rendition();
    if (r && event.rendition === undefined && event.type !== "rendition_switch") {
      event.rendition = r;
    }
    pending.push(event);
    if (now) {
      flush();
    }
  }

  function tick() {
    var t = performance.now();
    if (lastTick !== null && started && !video.paused && stalledAt === null && !video.seeking) {
      watchedMs += Math.min(t - lastTick, 5000);
    }
    lastTick = t;
  }

  function heartbeat() {
    tick();
    if (!started || stopped) {
      return;
    }
    report({ type: "heartbeat", position_s: Math.round(video.currentTime * 10) / 10, watched_ms: Math.round(watchedMs) }, true);
    watchedMs = 0;
  }

  function stop() {
    if (stopped || !started) {
      return;
    }
    stopped = true;
    tick();
    pending.push({ type: "stop", position_s: Math.round(video.currentTime * 10) / 10, watched_ms: Math.round(watchedMs), rendition: rendition() });
    var body = batch(pending.splice(0, 50));
    // The page is going away: sendBeacon outlives it.
    if (!(navigator.sendBeacon && navigator.sendBeacon(beaconUrl, new Blob([body], { type: "application/json" })))) {
      fetch(beaconUrl, { method: "POST", keepalive: true, credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: body });
    }
  }

  video.addEventListener("playing", function () {
    if (!started) {
      started = true;
      mark("playing");
      lastTick = performance.now();
      report({ type: "startup", startup_ms: state.marks.playing }, true);
    } else if (stalledAt !== null) {
      report({ type: "rebuffer", duration_ms: Math.round(performance.now() - stalledAt) });
    }
    stalledAt = null;
  });
  video.addEventListener("waiting", function () {
    tick();
    if (started && !video.seeking && stalledAt === null) {
      stalledAt = performance.now();
    }
  });
  video.addEventListener("seeking", function () {
    stalledAt = null;
  });
  video.addEventListener("pause", tick);
  video.addEventListener("ended", stop);
  video.addEventListener("error", function () {
    var codes = ["", "MEDIA_ERR_ABORTED", "MEDIA_ERR_NETWORK", "MEDIA_ERR_DECODE", "MEDIA_ERR_SRC_NOT_SUPPORTED"];
    report({ type: "error", code: (video.error && codes[video.error.code]) || "other", fatal: true }, true);
  });
  window.addEventListener("pagehide", stop);
  window.setInterval(heartbeat, heartbeatMs);

  if (video.requestVideoFrameCallback) {
    video.requestVideoFrameCallback(function () {
      mark("first_frame");
    });
  }

  // --- Playback ------------------------------------------------------------------------------
  function streamQuery() {
    var query = "?view_id=" + encodeURIComponent(viewId);
    var connection = navigator.connection;
    if (connection && connection.downlink) {
      query += "&bandwidth=" + Math.round(connection.downlink * 1e6);
    }
    return query;
  }

  // A live's distance from the live edge, in target durations (its segment length): where
  // hls.js starts, the latency past which it jumps back to there, and how fast it may play to
  // catch up after a stall (else each stall adds to the latency for good). bench/live.py
  // measures the glass-to-glass latency these give.
  var LIVE_SYNC = {
    standard: { liveSyncDurationCount: 3, liveMaxLatencyDurationCount: 4, maxLiveSyncPlaybackRate: 1.25 },
    low: { liveSyncDurationCount: 2, liveMaxLatencyDurationCount: 5, maxLiveSyncPlaybackRate: 1.25 },
  };

  function hlsConfig(stream) {
    var config = { capLevelToPlayerSize: false, startLevel: -1 };
    var live = stream.latency_mode && LIVE_SYNC[stream.latency_mode];
    if (live) {
      for (var name in live) {
        config[name] = live[name];
      }
    }
    return config;
  }

  function play(stream) {
    if (stream.poster_url) {
      video.poster = stream.poster_url;
    }
    var recommended = stream.recommended_rendition;
    if (window.Hls && window.Hls.isSupported()) {
      var hls = new window.Hls(hlsConfig(stream));
      state.hls = hls;
      hls.on(window.Hls.Events.MANIFEST_LOADED, function () {
        mark("master_playlist");
      });
      hls.on(window.Hls.Events.LEVEL_LOADED, function () {
        mark("media_playlist");
      });
      hls.on(window.Hls.Events.FRAG_LOADED, function (_event, data) {
        if (data.frag && data.frag.type === "main") {
          mark("first_segment");
        }
      });
      hls.on(window.Hls.Events.MANIFEST_PARSED, function (_event, data) {
        // Start at the recommended rendition (with ?start=lowest, at the lowest one the plan
        // allows: bench/playback.py compares them); ABR takes over from there.
        var lowest = 0;
        for (var i = 0; i < data.levels.length; i++) {
          if (data.levels[i].height < data.levels[lowest].height) {
            lowest = i;
          }
          if (data.levels[i].height === recommended.height) {
            hls.startLevel = i;
          }
        }
        if (lowestStart) {
          hls.startLevel = lowest;
        }
        state.ready = true;
        var playing = video.play();
        if (playing && playing.catch) {
          playing.catch(function () {
            say("Press play to start.");
          });
        }
      });
      hls.on(window.Hls.Events.LEVEL_SWITCHED, function (_event, data) {
        var level = hls.levels[data.level];
        var before = state.height;
        state.level = data.level;
        state.height = level ? level.height : null;
        if (started && before && state.height && before !== state.height) {
          report({ type: "rendition_switch", from: before + "p", to: state.height + "p" });
        }
        say("Playing " + (level ? level.height + "p" : "") + " (plan allows up to " + stream.max_resolution + "p)");
      });
      hls.on(window.Hls.Events.ERROR, function (_event, data) {
        report({ type: "error", code: String(data.details || "other").slice(0, 64), fatal: !!data.fatal }, !!data.fatal);
        if (data.fatal) {
          state.error = data.type + ": " + data.details;
          say("Playback error: " + data.details);
        }
      });
      hls.loadSource(stream.master_playlist_url);
      hls.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = stream.master_playlist_url;
      state.ready = true;
      video.play();
    } else {
      say("This browser cannot play HLS.");
    }
  }

  function load() {
    requestedAt = performance.now();
    state.marks = {};
    fetch(streamUrl + streamQuery(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) {
          return { status: response.status, body: body };
        });
      })
      .then(function (result) {
        mark("stream_answer");
        if (result.status === 200) {
          play(result.body);
        } else if (result.status === 409) {
          var error = result.body.error;
          say(error.message + (error.status === "processing" ? " " + error.progress + " %" : ""));
          if (error.status !== "failed") {
            window.setTimeout(load, 3000);
          }
        } else {
          state.error = result.body.error ? result.body.error.code : String(result.status);
          say(result.body.error ? result.body.error.message : "Cannot play this video.");
        }
      })
      .catch(function (err) {
        state.error = String(err);
        say("Cannot reach the server.");
      });
  }

  load();
})();
