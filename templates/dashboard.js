// gradaudit's Gradients dashboard inside TensorBoard. TensorBoard loads this module into the
// dashboard's frame and calls render(); the frame then shows the report's own index, served by the
// plugin from the runs it analysed (the same pages as the static report).
export function render() {
  window.location.replace(new URL("report/index.html", document.baseURI).href);
}
