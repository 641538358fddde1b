// maestro ui: the little behaviour htmx does not provide. No inline scripts anywhere (the
// Content-Security-Policy allows only this file and htmx), so everything is wired up here.
(function () {
  "use strict";

  // Fan-out groups the user expanded; kept across the fragments htmx swaps in every 2 s.
  var expanded = new Set();

  function applyGroups(root) {
    root.querySelectorAll("tr[data-member-of]").forEach(function (row) {
      row.hidden = !expanded.has(row.getAttribute("data-member-of"));
    });
    root.querySelectorAll("button[data-toggle-group]").forEach(function (button) {
      var open = expanded.has(button.getAttribute("data-toggle-group"));
      button.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  function openDialogOf(element) {
    var dialog = element && element.closest ? element.closest("dialog") : null;
    if (dialog && !dialog.open) {
      dialog.showModal();
    }
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) {
      return;
    }
    var toggle = target.closest("button[data-toggle-group]");
    if (toggle) {
      var name = toggle.getAttribute("data-toggle-group");
      if (expanded.has(name)) {
        expanded.delete(name);
      } else {
        expanded.add(name);
      }
      applyGroups(document);
      return;
    }
    var closer = target.closest("[data-close]");
    if (closer) {
      var dialog = closer.closest("dialog");
      if (dialog) {
        dialog.close();
      }
      return;
    }
    // A click on a process in the graph opens its details, as its row's button does.
    var node = target.closest("#graph g.node");
    if (node) {
      // The process -> details address map, as JSON in an attribute (escaped by the template).
      var graph = node.closest("#graph");
      var title = node.querySelector("title");
      if (!graph || !title) {
        return;
      }
      var urls = JSON.parse(graph.getAttribute("data-steps") || "{}");
      var name2 = title.textContent || "";
      var url = urls[name2] || urls[name2.replace(/ \([^()]*\)$/, "")];
      if (url && window.htmx) {
        window.htmx.ajax("GET", url, { target: "#details-body", swap: "innerHTML" });
      }
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (target instanceof Element) {
      openDialogOf(target);
      applyGroups(target.closest("dialog") ? target : document);
    }
  });

  // A closed dialog drops its content, so nothing inside it keeps polling.
  document.addEventListener(
    "close",
    function (event) {
      var dialog = event.target;
      if (dialog instanceof HTMLDialogElement) {
        var body = dialog.querySelector("[data-dialog-body]");
        if (body) {
          body.innerHTML = "";
        }
      }
    },
    true
  );

  document.addEventListener("DOMContentLoaded", function () {
    applyGroups(document);
    var opened = document.querySelector("dialog [data-dialog-body] > *");
    if (opened) {
      openDialogOf(opened);
    }
  });
})();
