// "Kill my gateway", so a person can watch recovery happen (development only).
//
// devcluster's demo server lists the gateways' process ids at `dev/gateways`, SIGKILLs one on
// `POST dev/kill-gateway` and says which gateway holds a connection at `dev/where`, all only
// when SB_ENV=development. devcluster restarts a killed
// gateway under its id (with a new pid), so the list is read again on every connect. Where the
// server has no process list, the page says how to find the pid instead.

export class DevTools {
  constructor({ panel, button, hint }, notice, error) {
    Object.assign(this, { panel, button, hint, notice, error });
    this.pids = new Map(); // gateway id -> pid
    this.gateway = null;
    this.behindBalancer = true;
    this.available = false;
    this.button.addEventListener("click", () => this.kill());
  }

  // Shown only where the demo server offers it (SB_ENV=development).
  async enable() {
    await this.refresh();
    this.panel.hidden = !this.available;
    this.render();
  }

  // Called on every connection change: `gateway` is the one we are on, or null.
  async update(gateway, behindBalancer) {
    this.gateway = gateway;
    this.behindBalancer = behindBalancer;
    if (this.panel.hidden) return;
    if (gateway) await this.refresh();
    this.render();
  }

  async refresh() {
    try {
      const response = await fetch("dev/gateways");
      const body = response.ok ? await response.json() : {};
      this.available = response.ok;
      this.pids = new Map((body.gateways ?? []).map((g) => [String(g.id), Number(g.pid)]));
    } catch {
      this.pids = new Map();
    }
  }

  render() {
    const pid = this.gateway ? this.pids.get(this.gateway) : undefined;
    this.button.hidden = pid === undefined;
    this.button.disabled = !this.gateway;
    this.button.textContent = this.gateway ? `Kill my gateway (${this.gateway})` : "Kill my gateway";
    const afterwards = this.behindBalancer
      ? "the page reconnects through the load balancer and recovers on another gateway"
      : "you picked one gateway: the page waits until devcluster has restarted it";
    if (!this.gateway) this.hint.textContent = "not connected: once connected, kill the gateway you are on and watch the page recover";
    else if (pid !== undefined) this.hint.textContent = `or in a terminal: kill -9 ${pid} — ${afterwards}`;
    else this.hint.textContent = `devcluster's log says "started ${this.gateway} pid=…": kill -9 that pid — ${afterwards}`;
  }

  // The gateway holding connection `sid` per the router's registry, or null when the demo
  // server cannot say: the sid names the gateway that opened the session, and an upgrade
  // through the balancer may have moved it (the gateway that got the upgrade takes it over).
  async locate(user, sid) {
    if (!this.available || !user || !sid) return null;
    try {
      const query = new URLSearchParams({ user, sid });
      const response = await fetch(`dev/where?${query}`);
      const body = response.ok ? await response.json() : {};
      return typeof body.gateway === "string" ? body.gateway : null;
    } catch {
      return null;
    }
  }

  async kill() {
    const gateway = this.gateway;
    if (!gateway) return;
    this.button.disabled = true;
    try {
      const response = await fetch("dev/kill-gateway", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ gateway }),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.error?.message ?? `HTTP ${response.status}`);
      this.notice(`killed gateway ${gateway} (pid ${body.pid}): watch the status line`);
    } catch (err) {
      this.error(`could not kill ${gateway}: ${err.message}`);
      this.button.disabled = false;
    }
  }
}
