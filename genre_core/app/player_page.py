"""The Track page player's HTML, CSS and JavaScript: a `str.format` template (literal braces
doubled) that `player.player_html` fills. Plain JavaScript, nothing loaded from anywhere (the
app's Content-Security-Policy allows no other origin): one <audio>, one playhead over the
lanes, click-to-seek, loop buttons, overlay choice. `window.glLoops` counts loop jumps (the
browser tests read it).
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><style>
body {{ margin: 0; font: {font}px "Source Sans Pro", Helvetica, Arial, sans-serif; color: #262730; background: #fff; }}
#player {{ padding: 2px 4px 4px 0; }}
audio {{ width: 100%; height: 40px; display: block; }}
.controls {{ display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: center; margin: 6px 0 4px 0; }}
.controls button {{ font: inherit; padding: 3px 10px; border: 2px solid #888; border-radius: 6px;
  background: #fff; cursor: pointer; }}
.controls button.on {{ background: #FFF3C4; }}
.controls button:disabled {{ opacity: .45; cursor: default; }}
.group label {{ margin-left: 8px; white-space: nowrap; }}
.opacity input {{ vertical-align: middle; width: 90px; }}
#status {{ font-variant-numeric: tabular-nums; color: #555; min-height: 1.3em; }}
#hover {{ float: right; color: #888; }}
.grid {{ display: grid; grid-template-columns: 64px 1fr; }}
.g {{ position: relative; }}
.hz, .lanelabel {{ position: absolute; right: 6px; font-size: .78em; color: #666; transform: translateY(50%);
  white-space: nowrap; }}
.lanelabel {{ bottom: 50%; }}
.legend {{ font-size: .85em; color: #555; }}
.legend i {{ display: inline-block; width: .8em; height: .8em; margin: 0 3px 0 10px; vertical-align: -1px; }}
#lanes {{ position: relative; cursor: crosshair; user-select: none; }}
.lane {{ position: relative; overflow: hidden; }}
.spec {{ height: {spec_h}px; }}
.lane.spec {{ background: #fafafa; }}
.spec img {{ position: absolute; left: 0; top: 0; width: 100%; height: 100%; image-rendering: auto; }}
.wave {{ height: {wave_h}px; }}
.lane.wave {{ border-top: 1px solid #eee; }}
.wave img {{ width: 100%; height: 100%; display: block; }}
.timeline {{ height: {time_h}px; }}
.lane.timeline {{ border-top: 1px solid #eee; }}
.cell {{ position: absolute; top: 3px; bottom: 3px; }}
.mark {{ position: absolute; border: 2px solid; box-sizing: border-box; border-radius: 3px; }}
.spot {{ position: absolute; top: 0; bottom: 0; min-width: 3px; border-left: 2px solid; border-right: 2px solid;
  box-sizing: border-box; pointer-events: none; }}
#loopbox {{ position: absolute; top: 0; bottom: 0; background: rgba(255, 214, 0, .12); display: none;
  border-left: 2px solid #E0A800; border-right: 2px solid #E0A800; box-sizing: border-box; pointer-events: none; }}
#playhead {{ position: absolute; top: 0; bottom: 0; width: 2px; margin-left: -1px; background: #1565C0;
  pointer-events: none; left: 0; }}
.axis {{ position: relative; height: 1.4em; }}
.tick {{ position: absolute; font-size: .78em; color: #666; white-space: nowrap; }}
</style></head><body><div id="player">
<audio id="audio" controls preload="auto" src="{audio}"></audio>
<div class="controls">{buttons}{cam_choice}</div>
<div id="status"><span id="clock">0.0 / {total} s</span> <span id="looping"></span><span id="hover"></span></div>
<div class="grid">
  <div class="gutter"><div class="g spec">{hz_labels}</div><div class="g wave"><span class="lanelabel">wave</span></div>{timeline_label}</div>
  <div id="lanes">
    <div class="lane spec" data-lane="spectrogram"><img src="{spectrogram}" alt="spectrogram">{overlays}</div>
    <div class="lane wave" data-lane="waveform"><img src="{waveform}" alt="waveform">{spots}</div>
    {timeline}
    <div id="loopbox"></div><div id="playhead"></div>
  </div>
  <div></div><div class="axis">{ticks}</div>
  <div></div><div class="legend">{legend}</div>
</div></div>
<script>
(function () {{
  const D = {data};
  const audio = document.getElementById("audio"), lanes = document.getElementById("lanes");
  const head = document.getElementById("playhead"), box = document.getElementById("loopbox");
  const clock = document.getElementById("clock"), looping = document.getElementById("looping");
  const hover = document.getElementById("hover"), stop = document.getElementById("stop");
  const buttons = Array.from(document.querySelectorAll("button.loop"));
  let loop = null;  // [start, end] while looping
  window.glLoops = 0;  // how many times a loop jumped back (read by the browser tests)
  const duration = () => (isFinite(audio.duration) && audio.duration > 0) ? audio.duration : D.duration;
  function draw() {{
    const t = audio.currentTime || 0;
    head.style.left = (100 * Math.min(t / duration(), 1)) + "%";
    clock.textContent = t.toFixed(1) + " / " + duration().toFixed(1) + " s";
  }}
  function check() {{
    if (loop && audio.currentTime >= loop[1] - 0.02) {{ audio.currentTime = loop[0]; window.glLoops += 1; }}
    draw();
  }}
  function setLoop(i) {{
    buttons.forEach((b, j) => b.classList.toggle("on", j === i));
    if (i === null) {{
      loop = null; box.style.display = "none"; looping.textContent = "";
      if (stop) stop.disabled = true;
      return;
    }}
    const [start, end, note] = D.loops[i];
    loop = [start, end];
    box.style.left = (100 * start / D.duration) + "%";
    box.style.width = (100 * (end - start) / D.duration) + "%";
    box.style.display = "block";
    looping.textContent = "· looping " + note;
    if (stop) stop.disabled = false;
    audio.currentTime = start;
    audio.play().catch(() => {{}});
  }}
  buttons.forEach((b, i) => b.addEventListener("click", () => setLoop(i)));
  if (stop) stop.addEventListener("click", () => setLoop(null));
  function timeAt(e) {{
    const r = lanes.getBoundingClientRect();
    return Math.max(0, Math.min(1, (e.clientX - r.left) / r.width)) * duration();
  }}
  lanes.addEventListener("click", (e) => {{
    const t = timeAt(e);
    if (loop && (t < loop[0] || t >= loop[1])) setLoop(null);
    audio.currentTime = t;
    draw();
  }});
  lanes.addEventListener("mousemove", (e) => {{
    let text = timeAt(e).toFixed(1) + " s";
    const lane = e.target.closest(".lane");
    if (lane && lane.dataset.lane === "spectrogram" && D.freqs.length) {{
      const r = lane.getBoundingClientRect();
      const band = Math.floor((1 - (e.clientY - r.top) / r.height) * D.freqs.length);
      const f = D.freqs[Math.max(0, Math.min(D.freqs.length - 1, band))];
      text += " · " + (f >= 1000 ? (f / 1000).toFixed(1) + " kHz" : f + " Hz");
    }}
    hover.textContent = text;
  }});
  lanes.addEventListener("mouseleave", () => {{ hover.textContent = ""; }});
  const cams = Array.from(document.querySelectorAll("img.cam"));
  const slider = document.getElementById("opacity");
  function showCam() {{
    const chosen = document.querySelector("input[name=cam]:checked");
    const i = chosen ? Number(chosen.value) : -1;
    cams.forEach((img) => {{ img.style.opacity = Number(img.dataset.cam) === i ? slider.value : 0; }});
  }}
  document.querySelectorAll("input[name=cam]").forEach((r) => r.addEventListener("change", showCam));
  if (slider) slider.addEventListener("input", showCam);
  audio.addEventListener("timeupdate", check);
  audio.addEventListener("seeked", draw);
  audio.addEventListener("loadedmetadata", draw);
  if (D.start > 0) {{  // a link's t=: start there (before the metadata, currentTime is not kept)
    const seek = () => {{ audio.currentTime = D.start; draw(); }};
    if (audio.readyState >= 1) seek(); else audio.addEventListener("loadedmetadata", seek, {{once: true}});
  }}
  function linkTime() {{  // the address of a track's page follows the playhead: t= (links.SOFT)
    if (!D.linkTime) return;
    try {{
      const url = new URL(window.parent.location.href);
      if (!url.searchParams.has("track")) return;
      const t = Math.round(10 * (audio.currentTime || 0)) / 10;
      if (t > 0) url.searchParams.set("t", String(t)); else url.searchParams.delete("t");
      if (url.href !== window.parent.location.href) window.parent.history.replaceState(window.parent.history.state, "", url.href);
    }} catch (e) {{}}
  }}
  audio.addEventListener("pause", linkTime);
  audio.addEventListener("seeked", linkTime);
  setInterval(() => {{ if (!audio.paused) check(); }}, 25);  // loops end within ~25 ms of their end
  (function frame() {{ if (!audio.paused) draw(); requestAnimationFrame(frame); }})();
  if (D.token) {{
    let seen = false;
    try {{ seen = sessionStorage.getItem("genrelens.autoplay") === D.token;
           sessionStorage.setItem("genrelens.autoplay", D.token); }} catch (e) {{}}
    if (!seen) audio.play().catch(() => {{}});
  }}
}})();
</script></body></html>
"""
