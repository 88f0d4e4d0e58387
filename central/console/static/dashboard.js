/* Tableau de bord: draws the charts (Chart.js) and the map (Leaflet) from the JSON data island
   #dashboard-data. The page's tables already hold every number; this only adds the pictures, so a missing
   library or blocked tiles leave a complete page. No inline script or style: the CSP forbids them. */
(function () {
  "use strict";
  var island = document.getElementById("dashboard-data");
  if (!island) { return; }
  var data = JSON.parse(island.textContent);
  // Colours with at least 3:1 contrast on white (WCAG 1.4.11 for graphical objects).
  var COLOURS = ["#00539f", "#b34700", "#12612c", "#6b3fa0", "#a3130f", "#00707a"];
  var number = new Intl.NumberFormat("fr-FR");

  // Long service titles would squeeze the bars: the axis shows their start, the tooltip and the table all.
  // A chart whose spec asks for "fitLabels" cuts them to its width instead (long place names on a phone).
  function shortener(spec) {
    return function (value) {
      var label = String(this.getLabelForValue(value));
      var max = spec.fitLabels ? Math.min(38, Math.max(12, Math.floor(this.chart.width / 16))) : 38;
      return label.length > max ? label.slice(0, max - 1) + "…" : label;
    };
  }

  function drawCharts() {
    if (typeof Chart === "undefined") { return; }
    Chart.defaults.font.family = "system-ui, 'DejaVu Sans', sans-serif";
    Chart.defaults.color = "#1b1b1b";
    Chart.defaults.animation = false; // no motion: quicker, and calmer for those who asked for less
    data.charts.forEach(function (spec) {
      var canvas = document.getElementById(spec.id);
      if (!canvas) { return; }
      var single = spec.datasets.length === 1;
      new Chart(canvas, {
        type: spec.type,
        data: {
          labels: spec.labels,
          datasets: spec.datasets.map(function (set, i) {
            return { label: set.label, data: set.data, backgroundColor: COLOURS[i % COLOURS.length],
                     borderColor: COLOURS[i % COLOURS.length], borderWidth: 1 };
          })
        },
        options: {
          indexAxis: spec.horizontal ? "y" : "x",
          responsive: true,
          maintainAspectRatio: false,
          plugins: {
            legend: { display: !single, position: "bottom" },
            tooltip: { callbacks: { label: function (ctx) {
              return ctx.dataset.label + " : " + number.format(ctx.parsed[spec.horizontal ? "x" : "y"]);
            } } }
          },
          scales: {
            x: { stacked: !!spec.stacked, beginAtZero: true, ticks: { precision: 0 } },
            y: { stacked: !!spec.stacked, beginAtZero: true, ticks: { precision: 0, callback: spec.horizontal ? shortener(spec) : undefined } }
          }
        }
      });
    });
  }

  function text(tag, content) {
    var element = document.createElement(tag);
    element.textContent = content;
    return element;
  }

  function drawMap() {
    var box = document.getElementById("map");
    if (!box || typeof L === "undefined") { return; }
    var map = L.map(box, { attributionControl: Boolean(data.tiles), scrollWheelZoom: false });
    if (data.tiles) {
      L.tileLayer(data.tiles, { maxZoom: 18, attribution: "© contributeurs OpenStreetMap" }).addTo(map);
    }
    var bounds = [];
    data.places.forEach(function (place) {
      var popup = document.createElement("div"); // text nodes only: names come from people
      popup.appendChild(text("strong", place.name));
      popup.appendChild(text("div", place.organisation));
      popup.appendChild(text("div", place.commune));
      // Not focusable one by one (a thousand tab stops): the list under the map is the keyboard's way in.
      L.marker([place.lat, place.lon], { title: place.name, alt: place.name, keyboard: false })
        .bindPopup(popup).addTo(map);
      bounds.push([place.lat, place.lon]);
    });
    if (bounds.length) {
      map.fitBounds(bounds, { padding: [24, 24], maxZoom: 13 });
    } else {
      map.setView([46.6, 2.4], 5); // metropolitan France
    }
  }

  drawCharts();
  drawMap();
}());
