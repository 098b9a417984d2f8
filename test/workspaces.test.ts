/** Workspaces, memberships, invitations and ownership over HTTP, on both drivers. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, fastAuth, signUp, type SignedUp, type TestApp } from './helpers/app.js';
import { drivers } from './helpers/database.js';

type User = SignedUp;

describe.each(drivers())('workspaces and members (%s)', (driver) => {
  let t: TestApp;
  let owner: User;
  let bob: User;
  let carol: User;

  const signup = (label: string) => signUp(t.app, `${label}-ws-${driver}@example.com`, label);
  const call = (
    user: User,
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    url: string,
    payload?: object,
    workspaceId = owner.workspaceId,
  ) =>
    t.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${user.token}`, 'x-workspace-id': workspaceId },
      ...(payload ? { payload } : {}),
    });
  const invite = async (email: string, role: string) => {
    const res = await call(owner, 'POST', '/v1/workspace/invitations', { email, role });
    expect(res.statusCode).toBe(201);
    return res.json<{ id: string; token: string }>();
  };
  const accept = (user: User, token: string) =>
    t.app.inject({
      method: 'POST',
      url: '/v1/invitations/accept',
      headers: { authorization: `Bearer ${user.token}` },
      payload: { token },
    });

  beforeAll(async () => {
    t = await createTestApp(driver, { configure: fastAuth });
    owner = await signup('owner');
    bob = await signup('bob');
    carol = await signup('carol');
  });
  afterAll(() => t.close());

  it('shows the current workspace with the caller’s role', async () => {
    const res = await call(owner, 'GET', '/v1/workspace');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: owner.workspaceId, role: 'owner' });
  });

  it('invites by email: the invitee joins with the token; nobody else can use it', async () => {
    const { token } = await invite(bob.email, 'editor');
    expect(token).toMatch(/^li_/);
    const stolen = await accept(carol, token);
    expect(stolen.statusCode).toBe(404);
    const joined = await accept(bob, token);
    expect(joined.statusCode).toBe(200);
    expect(joined.json()).toEqual({ workspaceId: owner.workspaceId, role: 'editor' });
    expect((await accept(bob, token)).statusCode).toBe(409);

    const members = await call(bob, 'GET', '/v1/workspace/members');
    expect(
      members.json<{ data: { email: string; role: string }[] }>().data.map((m) => [m.email, m.role]),
    ).toEqual([
      [owner.email, 'owner'],
      [bob.email, 'editor'],
    ]);
    // Bob now belongs to two workspaces.
    const me = await t.app.inject({
      method: 'GET',
      url: '/v1/me',
      headers: { authorization: `Bearer ${bob.token}` },
    });
    expect(me.json<{ memberships: unknown[] }>().memberships).toHaveLength(2);
  });

  it('re-inviting replaces the open invitation; revoked invitations stop working', async () => {
    const first = await invite(carol.email, 'viewer');
    const second = await invite(carol.email, 'viewer');
    expect(second.id).toBe(first.id);
    expect((await accept(carol, first.token)).statusCode).toBe(404);
    const open = await call(owner, 'GET', '/v1/workspace/invitations');
    expect(open.json<{ data: { email: string }[] }>().data.map((i) => i.email)).toContain(carol.email);
    expect((await call(owner, 'DELETE', `/v1/workspace/invitations/${second.id}`)).statusCode).toBe(204);
    expect((await accept(carol, second.token)).statusCode).toBe(404);
  });

  it('enforces roles: editors cannot manage members; nobody grants above their own role; owners only by transfer', async () => {
    expect(
      (await call(bob, 'POST', '/v1/workspace/invitations', { email: 'x@example.com', role: 'viewer' }))
        .statusCode,
    ).toBe(403);
    expect(
      (await call(bob, 'PATCH', `/v1/workspace/members/${owner.userId}`, { role: 'viewer' })).statusCode,
    ).toBe(403);
    expect(
      (await call(owner, 'PATCH', `/v1/workspace/members/${bob.userId}`, { role: 'owner' })).statusCode,
    ).toBe(400);
    const ownerChange = await call(owner, 'PATCH', `/v1/workspace/members/${owner.userId}`, {
      role: 'admin',
    });
    expect(ownerChange.statusCode).toBe(409);
    const promoted = await call(owner, 'PATCH', `/v1/workspace/members/${bob.userId}`, { role: 'admin' });
    expect(promoted.json()).toEqual({ userId: bob.userId, role: 'admin' });
    // Bob (admin) may manage, but not the owner.
    expect((await call(bob, 'DELETE', `/v1/workspace/members/${owner.userId}`)).statusCode).toBe(409);
    expect(
      (await call(bob, 'PATCH', `/v1/workspace/members/${carol.userId}`, { role: 'viewer' })).statusCode,
    ).toBe(404);
  });

  it('transfers ownership; the old owner becomes an admin; the owner cannot leave', async () => {
    expect(
      (await call(bob, 'POST', '/v1/workspace/transfer-ownership', { userId: bob.userId })).statusCode,
    ).toBe(403);
    expect((await call(owner, 'DELETE', `/v1/workspace/members/${owner.userId}`)).statusCode).toBe(409);
    const res = await call(owner, 'POST', '/v1/workspace/transfer-ownership', { userId: bob.userId });
    expect(res.statusCode).toBe(204);
    const roles = (await call(owner, 'GET', '/v1/workspace/members')).json<{
      data: { userId: string; role: string }[];
    }>().data;
    expect(Object.fromEntries(roles.map((m) => [m.userId, m.role]))).toEqual({
      [owner.userId]: 'admin',
      [bob.userId]: 'owner',
    });
    // The former owner may now leave.
    expect((await call(owner, 'DELETE', `/v1/workspace/members/${owner.userId}`)).statusCode).toBe(204);
    expect((await call(owner, 'GET', '/v1/workspace')).statusCode).toBe(404);
  });

  it('records every membership change in the workspace’s audit log, with the acting user', async () => {
    const rows = await t.db.database.db
      .selectFrom('audit_log')
      .select(['action', 'actor_user_id', 'request_id'])
      .where('workspace_id', '=', owner.workspaceId)
      .orderBy('created_at')
      .execute();
    const actions = rows.map((r) => r.action);
    for (const action of [
      'invitation.created',
      'invitation.accepted',
      'invitation.revoked',
      'member.role_changed',
      'workspace.ownership_transferred',
      'member.left',
    ]) {
      expect(actions, action).toContain(action);
    }
    const accepted = rows.find((r) => r.action === 'invitation.accepted');
    expect(accepted?.actor_user_id).toBe(bob.userId);
    expect(rows.every((r) => r.request_id)).toBe(true);
  });

  it('creates further workspaces for a user, who owns them', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/workspaces',
      headers: { authorization: `Bearer ${carol.token}` },
      payload: { name: 'Side project' },
    });
    expect(res.statusCode).toBe(201);
    const created = res.json<{ id: string; role: string; slug: string }>();
    expect(created).toMatchObject({
      role: 'owner',
      slug: expect.stringMatching(/^side-project-/) as unknown,
    });
    const renamed = await call(carol, 'PATCH', '/v1/workspace', { name: 'Main project' }, created.id);
    expect(renamed.json()).toMatchObject({ name: 'Main project' });
  });
});
