(function () {
  "use strict";
  var section = document.getElementById("upload");
  var form = document.getElementById("upload-form");
  var bar = document.getElementById("upload-progress");
  var said = document.getElementById("upload-status");
  var refresh = parseInt(section.getAttribute("data-refresh"), 10);
  var busy = false;
  // The page reloads itself as the meta refresh does without script, but
  // never while an upload is sending.
  if (refresh > 0) {
    setInterval(function () { if (!busy) { location.reload(); } }, refresh * 1000);
  }
  function say(text, cls) {
    said.textContent = text;
    said.className = "state " + (cls || "busy");
  }
  function reason(xhrText, status) {
    try { return JSON.parse(xhrText).error || ("HTTP " + status); } catch (e) { return "HTTP " + status; }
  }
  function watch(ns, name) {
    fetch("/api/v1/status", { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (st) {
        var dv = (st.dataVolumes || []).filter(function (d) {
          return d.metadata.namespace === ns && d.metadata.name === name;
        })[0];
        var phase = dv && dv.status && dv.status.phase;
        if (phase === "Succeeded") {
          say("DataVolume " + ns + "/" + name + ": Succeeded", "ok");
          busy = false;
          return;
        }
        if (phase === "Failed") {
          var msg = ((dv.status.conditions || []).filter(function (c) { return c.message; })[0] || {}).message || "";
          say("DataVolume " + ns + "/" + name + ": Failed " + msg, "bad");
          busy = false;
          return;
        }
        say("DataVolume " + ns + "/" + name + ": " + (phase || "processing"));
        setTimeout(function () { watch(ns, name); }, 1000);
      })
      .catch(function (e) { say("reading the status failed: " + e, "bad"); busy = false; });
  }
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var target = document.getElementById("upload-dv").value.split("/");
    var file = document.getElementById("upload-file").files[0];
    if (!file) { say("choose an image file first", "bad"); return; }
    var ns = target[0], name = target.slice(1).join("/");
    busy = true;
    say("asking for an upload token");
    fetch("/apis/upload.cdi.kubevirt.io/v1beta1/namespaces/" + encodeURIComponent(ns) + "/uploadtokenrequests", {
      method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ apiVersion: "upload.cdi.kubevirt.io/v1beta1", kind: "UploadTokenRequest",
        metadata: { generateName: "token-for-web-" }, spec: { pvcName: name } })
    }).then(function (r) {
      return r.text().then(function (t) {
        if (!r.ok) { throw new Error(reason(t, r.status)); }
        return JSON.parse(t).status.token;
      });
    }).then(function (token) {
      var data = new FormData();
      data.append("file", file);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1beta1/upload-form-async");
      xhr.setRequestHeader("Authorization", "Bearer " + token);
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) {
          bar.max = e.total;
          bar.value = e.loaded;
          say("sending " + Math.floor(100 * e.loaded / e.total) + "%");
        }
      };
      xhr.onload = function () {
        if (xhr.status === 200) {
          say("uploaded; processing");
          watch(ns, name);
        } else {
          say("upload failed: " + reason(xhr.responseText, xhr.status), "bad");
          busy = false;
        }
      };
      xhr.onerror = function () { say("upload failed: the connection broke", "bad"); busy = false; };
      say("sending");
      xhr.send(data);
    }).catch(function (e) { say("upload failed: " + e.message, "bad"); busy = false; });
  });
})();
