/* The HTML report's charts (`tokenomy report --format html` inlines chart.js, then this file): reads the
   report's data from the JSON block #report-data and draws it with the dashboard's own chart functions. */
"use strict";
(function () {
  const C = window.TokenomyChart;
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const $ = (id) => document.getElementById(id);
  C.costOverTime($("cost-chart"), data.series, data.levers, data.bucket_s);
  if (data.requests) C.leverBars($("lever-chart"), data.levers, data.saved_usd);
  else C.empty($("lever-chart"));
  C.costPer1k($("task-cost-chart"), data.by_task, 15);
  C.tokensPerRequest($("task-token-chart"), data.by_task, 15);
  C.costPer1k($("language-cost-chart"), data.by_language, 15);
  C.tokensPerRequest($("language-token-chart"), data.by_language, 15);
  document.body.dataset.drawn = "yes";
})();
