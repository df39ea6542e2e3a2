"""Live streaming: stream keys, RTMP publishing authorised by the app, live HLS, replays to VOD."""
