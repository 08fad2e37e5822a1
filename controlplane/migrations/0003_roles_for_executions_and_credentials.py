from django.db import migrations


def sync_roles(apps, schema_editor):
    from controlplane.roles import sync_role_groups

    sync_role_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("controlplane", "0002_roles_and_audit_guard"),
        ("executions", "0001_initial"),
        ("integrations", "0001_initial"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
