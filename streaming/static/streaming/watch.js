// The watch page: asks the stream endpoint for signed URLs, then plays the master playlist
// with hls.js (or natively where the browser plays HLS itself).
(function () {
  "use strict";
  var root = document.getElementById("player");
  var video = document.getElementById("video");
  var statusLine = document.getElementById("status");
  var streamUrl = root.getAttribute("data-stream-url");
  var state = (window.videoplatformPlayer = { ready: false, error: null, level: null, height: null });

  function say(text) {
    statusLine.textContent = text;
  }

  function bandwidthHint() {
    var connection = navigator.connection;
    return connection && connection.downlink ? "?bandwidth=" + Math.round(connection.downlink * 1e6) : "";
  }

  function play(stream) {
    if (stream.poster_url) {
      video.poster = stream.poster_url;
    }
    var recommended = stream.recommended_rendition;
    if (window.Hls && window.Hls.isSupported()) {
      var hls = new window.Hls({ capLevelToPlayerSize: false, startLevel: -1 });
      state.hls = hls;
      hls.on(window.Hls.Events.MANIFEST_PARSED, function (_event, data) {
        // Start at the recommended rendition; ABR takes over from there.
        for (var i = 0; i < data.levels.length; i++) {
          if (data.levels[i].height === recommended.height) {
            hls.startLevel = i;
          }
        }
        state.ready = true;
        var started = video.play();
        if (started && started.catch) {
          started.catch(function () {
            say("Press play to start.");
          });
        }
      });
      hls.on(window.Hls.Events.LEVEL_SWITCHED, function (_event, data) {
        var level = hls.levels[data.level];
        state.level = data.level;
        state.height = level ? level.height : null;
        say("Playing " + (level ? level.height + "p" : "") + " (plan allows up to " + stream.max_resolution + "p)");
      });
      hls.on(window.Hls.Events.ERROR, function (_event, data) {
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
    fetch(streamUrl + bandwidthHint(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) {
          return { status: response.status, body: body };
        });
      })
      .then(function (result) {
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
