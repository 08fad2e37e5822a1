from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("executions", "0001_initial"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(
                condition=models.Q(("status", "scheduled")),
                fields=["not_before"],
                name="execution_scheduled_due",
            ),
        ),
        migrations.AddField(
            model_name="execution",
            name="policy_reservations",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="execution",
            name="routing",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="executionstep",
            name="status",
            field=models.CharField(
                choices=[("success", "Success"), ("failed", "Failed"), ("refused", "Refused"), ("pending", "Pending")],
                max_length=20,
            ),
        ),
    ]
