// A web client written against the types generated from openapi.json alone: it signs in (a
// bearer token), reads the wallet and redeems. `tsc --strict` must accept it.
import type { components, paths } from "./api";

type Wallet = paths["/v1/me/wallet"]["get"]["responses"]["200"]["content"]["application/json"];
type RedeemBody =
  paths["/v1/me/redemptions"]["post"]["requestBody"]["content"]["application/json"];
type Redemption =
  paths["/v1/me/redemptions"]["post"]["responses"]["200"]["content"]["application/json"];
type Problem = components["schemas"]["Problem"];

async function call<T>(url: string, init: RequestInit): Promise<T> {
  const response = await fetch(url, init);
  if (!response.ok) {
    const problem = (await response.json()) as Problem;
    throw new Error(`${problem.status} ${problem.reason}: ${problem.detail}`);
  }
  return (await response.json()) as T;
}

export async function redeemFirstAffordable(
  base: string,
  token: string,
  itemId: string,
): Promise<{ available: number; status: string; code: string | null }> {
  const auth = { Authorization: `Bearer ${token}` };
  const wallet = await call<Wallet>(`${base}/v1/me/wallet`, { headers: auth });
  const available: number = wallet.points?.available ?? 0;
  const body: RedeemBody = { item_id: itemId, quantity: 1 };
  const redemption = await call<Redemption>(`${base}/v1/me/redemptions`, {
    method: "POST",
    headers: { ...auth, "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID() },
    body: JSON.stringify(body),
  });
  return { available, status: redemption.status, code: redemption.code ?? null };
}
