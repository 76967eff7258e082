// Loads before the page's modules (a classic script, so it runs even when a
// module cannot be fetched). A module that fails to load — a dropped
// connection, or Chromium's ERR_NETWORK_CHANGED when an interface comes up
// on the machine — would leave the page at "Loading…" for good: instead the
// page reloads itself, a few times at most, then says what happened.
(function () {
  'use strict';
  var KEY = 'containerlease.reloads';
  var MAX_RELOADS = 3;

  function attempts() {
    try {
      return Number(window.sessionStorage.getItem(KEY)) || 0;
    } catch (error) {
      return MAX_RELOADS; // no storage: no automatic reloads
    }
  }

  function remember(count) {
    try {
      window.sessionStorage.setItem(KEY, String(count));
    } catch (error) {
      // nothing to remember with
    }
  }

  function giveUp() {
    var boot = document.getElementById('boot');
    var fatal = document.getElementById('fatal');
    var text = document.getElementById('fatal-text');
    var retry = document.getElementById('fatal-retry');
    if (!boot || !fatal || !text || !retry) return;
    boot.hidden = true;
    text.textContent = 'Parts of this page could not be loaded (a network problem). Reload to try again.';
    retry.addEventListener('click', function () {
      remember(0);
      window.location.reload();
    });
    fatal.hidden = false;
  }

  window.addEventListener(
    'error',
    function (event) {
      var script = event.target;
      if (!(script instanceof HTMLScriptElement) || script.type !== 'module') return;
      var count = attempts();
      if (count >= MAX_RELOADS) {
        if (document.readyState === 'loading') {
          document.addEventListener('DOMContentLoaded', giveUp);
        } else {
          giveUp();
        }
        return;
      }
      remember(count + 1);
      window.setTimeout(function () {
        window.location.reload();
      }, 300 * (count + 1));
    },
    true,
  );
})();
