from django.db import migrations


def create_roles(apps, schema_editor):
    from controlplane.roles import sync_role_groups

    sync_role_groups(apps)


# On PostgreSQL the database itself refuses to rewrite history; TRUNCATE (test flushes,
# deliberate purges by the DBA) is still possible.
AUDIT_GUARD = """
CREATE OR REPLACE FUNCTION controlplane_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER controlplane_auditevent_append_only
    BEFORE UPDATE OR DELETE ON controlplane_auditevent
    FOR EACH ROW EXECUTE FUNCTION controlplane_auditevent_append_only();
"""
AUDIT_GUARD_REVERSE = """
DROP TRIGGER IF EXISTS controlplane_auditevent_append_only ON controlplane_auditevent;
DROP FUNCTION IF EXISTS controlplane_auditevent_append_only();
"""


def guard_audit(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(AUDIT_GUARD)


def unguard_audit(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(AUDIT_GUARD_REVERSE)


class Migration(migrations.Migration):
    dependencies = [
        ("controlplane", "0001_initial"),
        ("agents", "0001_initial"),
        ("policies", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(create_roles, migrations.RunPython.noop),
        migrations.RunPython(guard_audit, unguard_audit),
    ]
